import pytest

from repro.skip import SkipConfig, SkipConfigError


def test_parse_and_print_round_trip():
    config = SkipConfig.parse("TTFF", 4)
    assert config.flags == (True, True, False, False)
    assert str(config) == "TTFF"
    assert SkipConfig.parse("ttff", 4) == config
    assert SkipConfig.parse([True, True, False, False], 4) == config
    assert SkipConfig.parse(config, 4) is not None


def test_aliases():
    assert SkipConfig.parse("super", 5) == SkipConfig.super_net(5)
    assert str(SkipConfig.parse("base", 4)) == "TTTT"
    assert SkipConfig.parse("BASE", 4).is_base_net


def test_enumeration_order_is_fixed_and_complete():
    configs = SkipConfig.all(4)
    assert len(configs) == 16 == len(set(configs))
    assert str(configs[0]) == "FFFF" and str(configs[-1]) == "TTTT"
    assert [str(c) for c in configs[:3]] == ["FFFF", "FFFT", "FFTF"]
    assert [str(c) for c in configs] == sorted(str(c) for c in configs)  # 'F' < 'T'


@pytest.mark.parametrize("text", ["TTF", "TTFFF", "", "TXFF", "1010", "True", "T T F F"])
def test_bad_strings_name_the_architecture_and_its_stage_count(text):
    with pytest.raises(SkipConfigError) as error:
        SkipConfig.parse(text, 4, "resnet50")
    message = str(error.value)
    assert "resnet50" in message and "S=4" in message and "\n" not in message


def test_rejects_non_bool_sequences():
    with pytest.raises(SkipConfigError):
        SkipConfig.parse([1, 0, 1, 0], 4)
    with pytest.raises(SkipConfigError):
        SkipConfig.parse(3, 4)
