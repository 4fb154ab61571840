"""The responsibility list loader (pipelines/catalog/model.py): the shipped catalogue, and broken
copies of it that must fail with a CatalogError naming the file, the entry and the problem."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.catalog.model import CATALOG_DIR, Catalog, CatalogError, Sharing, catalog, load_catalog

pytestmark = pytest.mark.unit

POP = "resources/PS_POP_BASIC.yaml"


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return load_catalog(CATALOG_DIR)


# --- the shipped catalogue ------------------------------------------------------------------------

def test_shipped_catalogue_loads(cat):
    assert cat.node.code == "500000"
    assert {p.code for p in cat.providers} == {"PS", "CA", "CU"}
    assert catalog() is catalog()  # loaded once per process


def test_nine_resources(cat):
    assert sorted(cat.resources) == [
        "CA_CREMATION", "CA_MARRIAGE", "CA_SOCIAL_ORG", "CA_SUBSISTENCE",
        "CU_DECL_MONTHLY", "CU_ENT_REG", "CU_PENALTY", "PS_HUKOU_MOVE", "PS_POP_BASIC",
    ]
    for code, r in cat.resources.items():
        assert r.code == code and r.provider == code.split("_")[0]
    assert cat.resource("ps_pop_basic") is cat.resources["PS_POP_BASIC"]
    with pytest.raises(KeyError, match="PS_POP_BASIC"):
        cat.resource("NOPE")


def test_photo_is_forbidden(cat):
    r = cat.resource("PS_POP_BASIC")
    zp = r.field("ZP")
    assert zp.sharing is not None and zp.sharing.type == "N" and zp.sharing.basis
    assert r.sharing_of(zp).type == "N"
    assert r.forbidden_fields == ("ZP",)
    assert "ZP" not in {f.code for f in r.stored_fields}
    assert not r.sharing_of(zp).allows("GAJ", "NEWBORN")


def test_ethnicity_is_conditional(cat):
    r = cat.resource("PS_POP_BASIC")
    s = r.sharing_of(r.field("MZDM"))
    assert s.type == "C"
    assert set(s.consumers) == {"WJW", "JYJ", "GAJ"}
    assert set(s.purposes) == {"NEWBORN", "SCHOOL_ENROLL"}
    assert s.allows("WJW", "NEWBORN") and s.allows("JYJ", "SCHOOL_ENROLL")
    assert not s.allows("WJW", "AFTER_DEATH")  # purpose not listed
    assert not s.allows("RSJ", "NEWBORN")  # consumer not listed


def test_resource_default_sharing(cat):
    r = cat.resource("PS_POP_BASIC")
    for code in ("GMSFHM", "XM", "XBDM", "CSRQ"):
        f = r.field(code)
        assert f.sharing is None
        assert r.sharing_of(f) is r.sharing
        assert r.sharing_of(f).type == "U"
    assert "XM" in {f.code for f in r.stored_fields}


def test_sharing_allows():
    assert Sharing(type="U").allows("ANY", "ANYTHING")
    assert not Sharing(type="N", basis="law").allows("GAJ", "NEWBORN")
    c = Sharing(type="C", consumers=("MZJ",), purposes=("AFTER_DEATH", "SOCIAL_ASSIST"))
    assert c.allows("MZJ", "AFTER_DEATH") and c.allows("MZJ", "SOCIAL_ASSIST")
    assert not c.allows("MZJ", "NEWBORN") and not c.allows("RSJ", "AFTER_DEATH")
    with pytest.raises(ValueError):
        Sharing(type="C", consumers=("MZJ",))
    with pytest.raises(ValueError):
        Sharing(type="U", purposes=("NEWBORN",))


def test_field_types(cat):
    r = cat.resource("CU_PENALTY")
    assert r.field("FKJE").duckdb_type == "DECIMAL(18,2)"
    assert cat.resource("PS_POP_BASIC").field("CSRQ").duckdb_type == "DATE"


# --- broken copies --------------------------------------------------------------------------------

@pytest.fixture
def broken(tmp_path) -> Callable[..., tuple[CatalogError, Path]]:
    """Copy catalogs/, apply one change, load, and return the CatalogError (fails if none)."""

    def make(change: Callable[[Path], None]) -> tuple[CatalogError, Path]:
        root = tmp_path / "catalogs"
        shutil.copytree(CATALOG_DIR, root, ignore=shutil.ignore_patterns("divisions*"))
        load_catalog(root)  # the copy itself is fine
        change(root)
        with pytest.raises(CatalogError) as info:
            load_catalog(root)
        return info.value, root

    return make


def replace(rel: str, old: str, new: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        p = root / rel
        text = p.read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{old!r} not found once in {rel}"
        p.write_text(text.replace(old, new), encoding="utf-8")

    return change


def assert_names(err: CatalogError, *parts: str) -> None:
    msg = str(err)
    for part in parts:
        assert part in msg, f"{part!r} missing from: {msg}"


def test_yaml_syntax_error(broken):
    err, root = broken(replace(POP, "primary_key: [GMSFHM]", "primary_key: [GMSFHM"))
    assert_names(err, str(root / POP), "cannot read YAML", "line 9", "expected ',' or ']'")
    assert "<unicode string>" not in str(err)


def test_unknown_provider(broken):
    err, root = broken(replace(POP, "provider: PS", "provider: XX"))
    assert_names(err, str(root / POP), "entry PS_POP_BASIC", "provider 'XX'", "providers.yaml")


def test_conditional_sharing_without_purposes(broken):
    err, root = broken(replace(POP, ", purposes: [NEWBORN, SCHOOL_ENROLL]}", "}"))
    assert_names(err, str(root / POP), "entry PS_POP_BASIC", "MZDM", "sharing",
                 "needs both `consumers` and `purposes`")


def test_primary_key_names_undeclared_field(broken):
    err, root = broken(replace(POP, "primary_key: [GMSFHM]", "primary_key: [GMSFHM, NOPE]"))
    assert_names(err, str(root / POP), "entry PS_POP_BASIC", "primary_key", "undeclared", "NOPE")


def test_unknown_consumer(broken):
    err, root = broken(replace(POP, "consumers: [WJW, JYJ, GAJ]", "consumers: [WJW, XYZ, GAJ]"))
    assert_names(err, str(root / POP), "entry PS_POP_BASIC", "field MZDM", "unknown consumers",
                 "XYZ")


def test_unknown_purpose(broken):
    err, root = broken(replace(POP, "purposes: [NEWBORN, SCHOOL_ENROLL]",
                               "purposes: [NEWBORN, PARTY]"))
    assert_names(err, str(root / POP), "entry PS_POP_BASIC", "field MZDM", "unknown purposes",
                 "PARTY")


def test_decimal_without_precision(broken):
    rel = "resources/CU_PENALTY.yaml"
    err, root = broken(replace(rel, "type: decimal, precision: 18, scale: 2", "type: decimal"))
    assert_names(err, str(root / rel), "entry CU_PENALTY", "FKJE", "decimal needs `precision`")


def test_duplicated_field(broken):
    err, root = broken(replace(POP, "  - {code: XM,",
                               "  - {code: XBDM, name_zh: 性别, name_en: sex, type: string}\n"
                               "  - {code: XM,"))
    assert_names(err, str(root / POP), "entry PS_POP_BASIC", "declared twice", "XBDM")


def test_resource_file_name_must_match_code(broken):
    err, root = broken(lambda r: (r / POP).rename(r / "resources/PS_POP.yaml"))
    assert_names(err, str(root / "resources/PS_POP.yaml"), "entry PS_POP_BASIC",
                 "file name must equal the resource code")


def test_code_table_file_name_must_match_code(broken):
    err, root = broken(lambda r: (r / "code_tables/SEX.yaml").rename(r / "code_tables/GENDER.yaml"))
    assert_names(err, str(root / "code_tables/GENDER.yaml"), "entry SEX",
                 "file name must equal the table code")


def test_unknown_code_table(broken):
    err, root = broken(replace(POP, "code_table: ETHNICITY", "code_table: NATION"))
    assert_names(err, str(root / POP), "entry PS_POP_BASIC", "field MZDM", "NATION")


def test_list_entry_that_is_not_a_mapping(broken):
    err, root = broken(lambda r: (r / "providers.yaml").write_text("- PS\n", encoding="utf-8"))
    assert_names(err, str(root / "providers.yaml"), "entry #1", "valid dictionary")


def test_missing_required_key(broken):
    err, root = broken(replace("providers.yaml", "  name_en: Ministry of Civil Affairs\n", ""))
    assert_names(err, str(root / "providers.yaml"), "entry #2 (CA)", "name_en", "Field required")
