"""torch.hub entry points: every name ``segzoo.create_model`` takes.

    model = torch.hub.load("<owner>/segzoo", "pspnet_resnet101_voc", pretrained=True)
    model = torch.hub.load("<owner>/segzoo", "fcn_resnet50", num_classes=5, pretrained_backbone=True)
    torch.hub.list("<owner>/segzoo")   # segzoo.list_models(): zoo names and <head>_<backbone> on ResNets

Keyword arguments are ``create_model``'s. segzoo's heads are registered as entry points of the installed
package, so install it (``pip install segzoo``, or this repository) in the environment that loads the model.
"""
import segzoo

dependencies = ["torch", "timm", "huggingface_hub", "safetensors", "PIL", "numpy"]


def __getattr__(name: str):
    if name.startswith("_"):
        raise AttributeError(name)

    def entry(**kwargs):
        return segzoo.create_model(name, **kwargs)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = f"segzoo.create_model({name!r}, **kwargs): see help(segzoo.create_model)."
    return entry


def __dir__():
    return segzoo.list_models()
