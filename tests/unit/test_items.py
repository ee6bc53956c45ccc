"""Item ids: deterministic, and the same as `uuid.uuid5` ever gave (a changed id would duplicate items)."""

import uuid

from indexer.items import NAMESPACE, id_from_content, id_from_source, uuid5_str


def test_uuid5_str_is_uuid5_for_every_kind_of_name():
    names = ["", "src:default:0", "é ü 中文 🙂", "img:" + "f" * 64, "x" * 5000]
    names += [f"src:feed:{i}" for i in range(500)]
    for name in names:
        assert uuid5_str(name) == str(uuid.uuid5(NAMESPACE, name))


def test_ids_are_pinned_across_releases():
    # values computed with uuid.uuid5 before uuid5_str existed
    assert id_from_source("default", "42") == "442a3492-f21f-5cb3-9440-e090dc2bccdf"
    assert id_from_content("abc", None, with_caption=False) == "4309e4e9-c56e-5e9d-97fa-00f5e6bfd0e8"
