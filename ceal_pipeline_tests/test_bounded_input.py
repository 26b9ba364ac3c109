"""Files from outside are read with bounds: size, depth, element count, repeated keys, links, FIFOs."""

from __future__ import annotations

import os
import pickle
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ceal_pipeline.bounded_input import (
    MAX_DEPTH,
    UntrustedInputError,
    check_shape,
    load_json,
    load_pickle,
    read_regular_file,
)


def test_json_with_a_key_given_twice_is_refused_naming_the_key_and_the_file():
    with pytest.raises(UntrustedInputError, match=r"acme\.json: the key 'openlabel' is given twice"):
        load_json(b'{"openlabel": {"frames": {"0": {}}}, "openlabel": {}}', "acme.json")


@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=2, max_size=6))
def test_any_object_repeating_a_key_is_refused_and_any_other_is_read(keys):
    text = "{" + ", ".join(f'"{k}": {i}' for i, k in enumerate(keys)) + "}"
    if len(set(keys)) < len(keys):
        with pytest.raises(UntrustedInputError, match="given twice"):
            load_json(text, "f.json")
    else:
        assert load_json(text, "f.json") == {k: i for i, k in enumerate(keys)}


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, 100_000])
def test_json_nested_deeper_than_the_bound_is_refused_without_a_recursion_error(depth):
    with pytest.raises(UntrustedInputError, match="nested more than"):
        load_json(b"[" * depth + b"]" * depth, "deep.json")


def test_json_at_the_depth_bound_is_read():
    assert load_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, "ok.json") is not None


def test_json_that_is_not_utf8_is_refused_naming_the_byte():
    with pytest.raises(UntrustedInputError, match="not UTF-8 text"):
        load_json(b'{"a": "\xff"}', "latin1.json")


def test_element_count_is_bounded():
    with pytest.raises(UntrustedInputError, match="more than 100 values"):
        check_shape(list(range(200)), "big.json", max_elements=100)


def test_a_pickle_calling_ndarray_with_a_huge_shape_is_refused_before_allocating():
    huge = b"cnumpy\nndarray\n(I1000000000000\ntR."
    with pytest.raises(UntrustedInputError, match="larger than"):
        load_pickle(huge, "infos.pkl")


def test_a_pickle_reconstructing_a_huge_array_is_refused():
    huge = b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I100000000000\ntS'b'\ntR."
    with pytest.raises(UntrustedInputError, match="larger than"):
        load_pickle(huge, "infos.pkl")


def test_a_pickle_naming_a_function_is_refused():
    with pytest.raises(UntrustedInputError, match="refusing to load posix.system|refusing to load os.system"):
        load_pickle(b"cos\nsystem\n(S'echo pwned'\ntR.", "evil.pkl")


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_plain_containers_and_numpy_arrays_round_trip(protocol):
    payload = {"data_list": [{"bbox_3d": np.arange(7.0), "label": np.int64(2)}], "metainfo": {"k": (1, "a")}}
    loaded = load_pickle(pickle.dumps(payload, protocol=protocol), "infos.pkl")
    np.testing.assert_array_equal(loaded["data_list"][0]["bbox_3d"], np.arange(7.0))
    assert loaded["metainfo"] == {"k": (1, "a")}


def test_a_pickled_container_that_contains_itself_is_walked_once():
    loop: list = []
    loop.append(loop)
    assert load_pickle(pickle.dumps(loop), "loop.pkl")[0][0] is not None


def test_a_symbolic_link_is_not_followed(tmp_path):
    (tmp_path / "secret").write_text("x")
    os.symlink(tmp_path / "secret", tmp_path / "delivery.json")
    with pytest.raises(UntrustedInputError, match="symbolic link"):
        read_regular_file(tmp_path / "delivery.json")


def test_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.json")
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(_refusal(tmp_path / "pipe.json")), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert outcome and "not a regular file" in outcome[0]


def _refusal(path) -> str:
    try:
        read_regular_file(path)
    except UntrustedInputError as exc:
        return str(exc)
    return "read"


def test_a_file_over_the_size_bound_is_refused_unread(tmp_path):
    path = tmp_path / "big.json"
    with open(path, "wb") as handle:
        handle.truncate(1025)
    with pytest.raises(UntrustedInputError, match="1025 bytes, more than the 1024"):
        read_regular_file(path, max_bytes=1024)
