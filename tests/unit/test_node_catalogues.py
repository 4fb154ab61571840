"""Each node's list: the base list with the differences under catalogs/nodes/<code>/, picked by
HUILIU_NODE; a difference that names nothing of the list is refused at load."""

import shutil

import pytest

from pipelines.catalog.model import CATALOG_DIR, CatalogError, load_catalog


def test_each_node_loads_its_own_list_and_the_base_is_chongqings():
    base = load_catalog(node="500000")
    sichuan, shenzhen = load_catalog(node="510000"), load_catalog(node="440300")
    assert (base.node.code, sichuan.node.code, shenzhen.node.code) == ("500000", "510000", "440300")
    address = {c: cat.resource("PS_POP_BASIC").field("HJDZ_XXDZ").sharing
               for c, cat in (("500000", base), ("510000", sichuan), ("440300", shenzhen))}
    assert "MARRIAGE_REG" in address["500000"].purposes
    assert "MARRIAGE_REG" not in address["440300"].purposes
    assert "WJW" not in address["510000"].consumers and "WJW" in address["500000"].consumers
    # everything a node does not name is the base list's
    assert sichuan.resource("CA_MARRIAGE") == base.resource("CA_MARRIAGE")


def test_a_node_without_its_own_folder_gets_the_base_list(monkeypatch):
    monkeypatch.setenv("HUILIU_NODE", "990000")
    assert load_catalog().node.code == "500000"  # and backflow refuses: NodeMismatch


@pytest.mark.parametrize("grants, problem", [
    ("NO_SUCH: {XM: {type: U}}", "not a resource"),
    ("PS_POP_BASIC: {NOPE: {type: U}}", "no fields ['NOPE']"),
    ("PS_POP_BASIC: {XM: {type: C, consumers: [JYJ]}}", "needs both"),
])
def test_a_grant_that_names_nothing_of_the_list_is_refused_naming_the_file(tmp_path, grants,
                                                                          problem):
    root = tmp_path / "catalogs"
    shutil.copytree(CATALOG_DIR, root)
    (root / "nodes" / "510000" / "grants.yaml").write_text(grants, encoding="utf-8")
    with pytest.raises(CatalogError) as e:
        load_catalog(root, node="510000")
    assert "grants.yaml" in str(e.value) and problem in str(e.value)
