"""plugins.Registry, under every registry: registering, looking up, listing, entry points."""

from importlib.metadata import EntryPoint

import pytest

from birdie_ssm import plugins
from birdie_ssm.errors import BirdieError


def test_register_refuses_a_taken_name_unless_replace():
    registry = plugins.Registry("widget")
    first, second = object(), object()
    assert registry.register("knob", first) is first
    assert registry.register("knob", first) is first  # the same component again
    with pytest.raises(ValueError, match="widget 'knob' is already registered"):
        registry.register("knob", second)
    registry.register("knob", second, replace=True)
    assert registry.lookup("knob") is second


def test_a_class_defined_anew_under_its_name_replaces_itself():
    registry = plugins.Registry("widget")
    registry.add("knob")(type("Knob", (), {}))
    again = registry.add("knob")(type("Knob", (), {}))  # its module imported a second time
    assert registry["knob"] is again
    with pytest.raises(ValueError, match="already registered"):
        registry.add("knob")(type("Dial", (), {}))


def test_an_unknown_name_suggests_the_nearest_and_lists_all():
    registry = plugins.Registry("widget", error=LookupError)
    registry.update(slider=1, switch=2)
    with pytest.raises(LookupError, match=r"unknown widget 'swtch'; did you mean 'switch'\? "
                       r"\(registered: slider, switch\)"):  # fmt: skip
        registry.lookup("swtch")
    with pytest.raises(LookupError, match=r"unknown widget 'gauge' \(registered"):
        registry.lookup("gauge")


def test_entry_points_register_at_the_first_miss_or_listing(monkeypatch):
    registry = plugins.Registry("widget", "test.widgets")
    loaded = []

    def load(self):
        loaded.append(self.name)
        registry.register(self.name, self.value)

    monkeypatch.setattr(EntryPoint, "load", load)
    monkeypatch.setattr(plugins, "_loaded_groups", set())
    advertised = [EntryPoint("dial", "pkg.dial", "test.widgets")]
    monkeypatch.setattr(
        plugins, "entry_points", lambda group: advertised if group == "test.widgets" else []
    )
    registry.register("knob", 1)
    assert registry.lookup("knob") == 1 and loaded == []  # a known name loads nothing
    assert registry.names() == ["knob", "dial"] and loaded == ["dial"]
    with pytest.raises(BirdieError, match="unknown widget 'gauge'"):
        registry.lookup("gauge")
    assert loaded == ["dial"]  # once per process


def test_did_you_mean_is_empty_when_nothing_is_near():
    assert plugins.did_you_mean("stpes", ["steps", "seed"]) == "; did you mean 'steps'?"
    assert plugins.did_you_mean("zzz", ["steps", "seed"]) == ""
