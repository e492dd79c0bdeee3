"""attnlib.glue: myst-nb's glue when it is installed, a plain display (or nothing) otherwise."""

import sys

import pytest

import attnlib


def test_glue_hands_the_value_to_myst_nb(monkeypatch):
    import myst_nb

    calls = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display: calls.append((name, value, display)))
    assert attnlib.glue("best_loss", 0.5, display=False) is None
    assert calls == [("best_loss", 0.5, False)]


def test_without_myst_nb_glue_only_displays(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # import myst_nb now raises ImportError
    attnlib.glue("quiet", 1.25, display=False)
    assert capsys.readouterr().out == ""
    attnlib.glue("shown", 1.25)
    assert capsys.readouterr().out == "1.25\n"


@pytest.mark.parametrize("name", ["", "two words", 3, "a-b"])
def test_a_bad_name_is_refused(name):
    with pytest.raises(ValueError, match="glue: name must be"):
        attnlib.glue(name, 1.0)


def test_display_must_be_a_bool():
    with pytest.raises(TypeError, match="glue: display must be True or False, got str"):
        attnlib.glue("x", 1.0, display="no")
