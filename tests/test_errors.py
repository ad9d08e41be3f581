"""Error messages that name their fix in Python words and, from the CLI, in command words."""

from __future__ import annotations

import logging
import pickle

import pytest

from sensorium_data.cli import command_words
from sensorium_data.errors import OVERWRITE, Fix, Message, cli_message, convert_again


def test_a_message_is_the_python_string_and_holds_the_command_form():
    msg = Message("F.zarr exists; pass ", OVERWRITE, " to replace it.")
    assert msg == "F.zarr exists; pass overwrite=True to replace it."
    assert msg.cli == "F.zarr exists; pass --overwrite to replace it."
    with pytest.raises(FileExistsError, match=r"pass overwrite=True to replace it\.$"):
        raise FileExistsError(msg)


@pytest.mark.parametrize("kind", [FileExistsError, ValueError, KeyError, FileNotFoundError])
def test_any_exception_carries_one_through_pickling(kind):
    error = pickle.loads(pickle.dumps(kind(Message("a ", Fix("x=True", "--x"), " b"))))
    assert cli_message(error) == "a --x b"
    assert "x=True" in str(error)


def test_messages_nest_and_plain_errors_pass_through():
    inner = Message("use ", Fix("lr=0.1", "--set lr=0.1"))
    outer = Message("stopped: ", inner, ".")
    assert (outer, outer.cli) == ("stopped: use lr=0.1.", "stopped: use --set lr=0.1.")
    assert cli_message(ValueError("plain")) == "plain"
    assert cli_message(OSError(2, "No such file")) == "[Errno 2] No such file"


def test_convert_again_names_the_store_in_both_forms():
    fix = convert_again("s/F.zarr")
    assert fix.python == "sensorium_data.convert(<tree or zip>, 's/F.zarr', overwrite=True)"
    assert fix.cli == "sensorium convert <tree or zip> --store s/F.zarr --overwrite"


def test_the_cli_logging_filter_swaps_in_the_command_words():
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "%s is finished: %s", (
        "run", Message("pass a larger ", Fix("max_epochs", "--max-epochs"))), None)
    assert command_words(record)
    assert record.getMessage() == "run is finished: pass a larger --max-epochs"


def test_a_message_included_in_another_keeps_its_command_words():
    from sensorium_data.errors import Fix, Message, cli_message, reason

    inner = ValueError(Message("bad; pass ", Fix("x=1", "--x 1"), "."))
    outer = ValueError(Message("model_config: ", reason(inner)))
    assert str(outer) == "model_config: bad; pass x=1."
    assert cli_message(outer) == "model_config: bad; pass --x 1."
    assert reason(TypeError("plain")) == "plain"
    # an f-string keeps only the Python words: what reason() is for
    assert cli_message(ValueError(f"model_config: {inner}")) == "model_config: bad; pass x=1."
