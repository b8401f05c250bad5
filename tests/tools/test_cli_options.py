"""Options that several ``segzoo`` verbs take are declared once: they parse and read the same in each verb."""
import pytest

from segzoo.tools.cli import _build_parser

VERBS = _build_parser()._subparsers._group_actions[0].choices


def _option(verb: str, flag: str):
    return next(action for action in VERBS[verb]._actions if flag in action.option_strings)


@pytest.mark.parametrize("flag, verbs", [
    ("--num-classes", ("benchmark", "predict", "export")),
    ("--cache-dir", ("info", "pull")),
    ("--token", ("info", "push", "pull")),
    ("--endpoint", ("info", "push", "pull")),
])
def test_a_shared_option_is_the_same_in_every_verb(flag, verbs):
    def described(action):  # integer(1) is a new function each time: its qualified name says which kind
        return action.help, getattr(action.type, "__qualname__", None), action.metavar, action.default, action.nargs

    first, *others = (described(_option(verb, flag)) for verb in verbs)
    assert all(other == first for other in others)


@pytest.mark.parametrize("verb, arguments, expected", [
    ("benchmark", ["x"], {"num_classes": None, "device": "cpu", "size": (480, 480)}),
    ("benchmark", ["x", "--num-classes", "3", "--device", "cuda:1", "--size", "64", "32"],
     {"num_classes": 3, "device": "cuda:1", "size": [64, 32]}),
    ("predict", ["a.png", "--model", "m"], {"num_classes": None, "device": "auto"}),
    ("export", ["m", "--size", "64", "32"], {"size": [64, 32], "num_classes": None}),
    ("convert", ["a.pth", "out", "--num-classes", "21"], {"num_classes": 21}),
    ("pull", ["r/m", "--revision", "v1"], {"revision": "v1", "cache_dir": None, "token": None, "endpoint": None}),
    ("push", [".", "r/m"], {"revision": None, "token": None, "endpoint": None}),
])
def test_shared_options_parse_with_their_defaults(verb, arguments, expected):
    args = _build_parser().parse_args([verb, *arguments])
    assert {name: getattr(args, name) for name in expected} == expected


@pytest.mark.parametrize("verb, arguments", [
    ("benchmark", ["x", "--num-classes", "0"]), ("export", ["m", "--size", "0", "64"]),
    ("predict", ["a.png", "--model", "m", "--num-classes", "two"]),
])
def test_shared_options_refuse_bad_values(verb, arguments, capsys):
    with pytest.raises(SystemExit) as exit:
        _build_parser().parse_args([verb, *arguments])
    assert exit.value.code == 2 and "must be an integer >= 1" in capsys.readouterr().err
