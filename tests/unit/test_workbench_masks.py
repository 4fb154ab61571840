"""The statistical tier's masks: pseudonyms are HMAC-SHA-256 under the hub's key (the SQL the tier
is built with gives what the standard library gives), the key is refused when missing or weak
outside demo mode, and the masking file cannot leave an identifier in clear."""

import hashlib
import hmac

import duckdb
import pytest
import yaml

from pipelines.catalog.model import CatalogError, load_catalog
from pipelines.workbench import masking
from pipelines.workbench.pseudonym import PseudonymKeyError, macro_sql, pseudonym_key

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("key", [b"k" * 40, b"a-much-longer-key-" * 8])  # short and > block
def test_the_sql_pseudonym_is_hmac_sha256_of_the_value(key):
    con = duckdb.connect()
    con.execute(macro_sql(key))
    ids = ["500101197308269631", "11010519491231002X", "张三"]
    got = [r[0] for r in con.execute("SELECT pseudonym(x) FROM unnest(?) t(x)", [ids]).fetchall()]
    assert got == ["P" + hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:20] for v in ids]
    assert con.execute("SELECT pseudonym(NULL)").fetchone()[0] is None


def test_the_key_is_refused_when_missing_or_weak_outside_demo_mode(monkeypatch):
    monkeypatch.delenv("HUILIU_DEMO", raising=False)
    for value in ("", "short", "demo-pseudonym-key-not-for-production", "x" * 40):
        monkeypatch.setenv("HUILIU_PSEUDONYM_KEY", value)
        with pytest.raises(PseudonymKeyError, match="HUILIU_PSEUDONYM_KEY"):
            pseudonym_key()
    monkeypatch.setenv("HUILIU_PSEUDONYM_KEY", "")
    monkeypatch.setenv("HUILIU_DEMO", "1")
    assert pseudonym_key() == b"demo-pseudonym-key-not-for-production"


def test_an_identifier_left_without_a_mask_stops_the_build(tmp_path, monkeypatch):
    data = yaml.safe_load(masking.MASKING_FILE.read_text(encoding="utf-8"))
    del data["resources"]["CA_MARRIAGE"]["NV_ZJHM"]  # the wife's document number
    edited = tmp_path / "masking.yaml"
    edited.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    monkeypatch.setattr(masking, "MASKING_FILE", edited)
    with pytest.raises(CatalogError, match="CA_MARRIAGE.NV_ZJHM"):
        masking.load_masking(load_catalog())


def test_a_sole_traders_name_and_codes_are_pseudonymised_with_its_uscc():
    """A sole trader's (个体工商户, USCC 92…) business is the person: its name and codes are
    pseudonymised; an enterprise's stay as they are."""
    name, uscc = masking.Mask("sole_trader_of", "TYSHXYDM"), masking.Mask("sole_trader")
    con = duckdb.connect()
    con.execute(macro_sql(b"k" * 40))
    rows = con.execute(f"""SELECT {name.sql('QYMC', 'TYSHXYDM')}, {uscc.sql('TYSHXYDM')}
        FROM (VALUES ('张三烧烤店', '92500103MA5UXXXX1A'), ('重庆某某有限公司', '91500103MA5UYYYY2B'))
        t(QYMC, TYSHXYDM)""").fetchall()
    assert rows[0][0].startswith("P") and rows[0][1].startswith("P")
    assert rows[1] == ("重庆某某有限公司", "91500103MA5UYYYY2B")
