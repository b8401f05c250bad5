"""Tools over the library: the ``segzoo`` command (``cli``), ``benchmark``, FLOP counting (``flops``), ``export``
and ``model_info`` (``info``). Nothing in segzoo's core imports them; ``import segzoo`` reaches them lazily."""
