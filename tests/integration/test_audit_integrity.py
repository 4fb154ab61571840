"""The audit log cannot be rewritten quietly: its chain is a MAC under a key its readers do not
hold, its head is anchored in a file the writer only appends to, and weak, published or changed
keys are refused with one line, by `huiliu audit verify` and by `huiliu serve`."""

import hashlib
import os
import subprocess
import sys

import orjson
import pytest

from pipelines.serving.audit import AuditLog
from pipelines.serving.audit_lines import parse_line

pytestmark = pytest.mark.integration

KEY = "integrity-test-key-3b9e0c71d2a54f86a1c7e93d5b08f2c4"
OTHER_KEY = "another-long-random-key-8c1f5a2e7d9b4036e5a1c8f2"
DEMO_KEY = "demo-audit-key-not-for-production"
WEAK = ["x", "dev-audit-key-change-me", DEMO_KEY, "short-but-random-9f2"]


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A home whose audit log holds six entries, written by a service keyed with KEY and anchored
    in a folder of its own (standing in for the operator's append-only location)."""
    anchor = tmp_path / "elsewhere" / "audit.anchor"
    anchor.parent.mkdir()
    env = environ(monkeypatch, HUILIU_AUDIT_KEY=KEY, HUILIU_AUDIT_ANCHOR=str(anchor))
    log = tmp_path / "hub" / "serving" / "audit.jsonl"
    write(log, 6)
    return tmp_path / "hub", log, anchor, env


def environ(monkeypatch, **values) -> dict:
    """Sets these (and no HUILIU_DEMO unless given) for AuditLog here; returns the environment
    for the CLI."""
    monkeypatch.delenv("HUILIU_DEMO", raising=False)
    monkeypatch.delenv("HUILIU_AUDIT_ANCHOR", raising=False)
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return dict(os.environ)


def write(log, n, key=KEY, first=1):
    a = AuditLog(log, key.encode())
    for i in range(first, first + n):
        a.append(consumer="WJW", purpose="NEWBORN", template="NEWBORN", case_id=f"C{i}",
                 subjects=[f"1:50010319800102011{i % 10}"], released=["mother.name"],
                 withheld=[], answer=f"answer {i}".encode())
    a.close()


def verify(home, env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", "audit", "verify", "--home",
                           str(home), *args], env=env, capture_output=True, text=True,
                          timeout=120)


def lines(log) -> list[bytes]:
    return log.read_bytes().splitlines(keepends=True)


def without_derived_files(log):
    """What a careful attacker also removes: the index (derived: rebuilt from the log) and any
    head kept from an earlier cut."""
    for p in log.parent.glob(f"{log.stem}.index.sqlite*"):
        p.unlink()
    for p in log.parent.glob(f"{log.name}.cut-at-*"):
        p.unlink()


def rechain_without_the_key(entries: list[dict]) -> list[bytes]:
    """Renumber and re-chain entries the only way one can without the key: the unkeyed sha256
    chain of earlier versions (canonical JSON array of every column but the hash)."""
    out, prev = [], "0" * 64
    for seq, e in enumerate(entries, start=1):
        e = e | {"seq": seq, "prev_hash": prev}
        values = [e[k] for k in ("seq", "at", "consumer", "purpose", "template", "case_id",
                                 "subjects", "released", "withheld", "answer_digest",
                                 "prev_hash")]
        canonical = orjson.dumps(values)
        prev = hashlib.sha256(prev.encode() + canonical).hexdigest()
        out.append(orjson.dumps([*values, prev]) + b"\n")
    return out


def set_head(log, seq: int, mac: str) -> None:
    log.with_name(f"{log.name}.head").write_text(f"{seq:020d} {mac}\n")


def one_line_refusal(out: subprocess.CompletedProcess, *words: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    err = out.stderr.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("huiliu: ") and all(w in err for w in words), err


def test_an_untouched_log_verifies(hub):
    home, _, _, env = hub
    out = verify(home, env)
    assert out.returncode == 0 and "intact" in out.stdout, out.stdout + out.stderr


def test_an_entry_deleted_and_the_chain_recomputed_without_the_key_is_found(hub):
    """Before: the chain was unkeyed sha256, and a log with entry 3 deleted, the chain, head and
    index recomputed verified as intact."""
    home, log, _, env = hub
    entries = [parse_line(line) for line in lines(log)]
    forged = rechain_without_the_key(entries[:2] + entries[3:])
    log.write_bytes(b"".join(forged))
    set_head(log, 5, parse_line(forged[-1])["hash"])
    without_derived_files(log)
    out = verify(home, env)
    assert out.returncode == 1, out.stdout + out.stderr
    for seq in range(1, 6):  # every entry re-chained without the key fails its MAC
        assert f"entry {seq}: edited" in out.stdout, out.stdout


def test_a_forged_chain_is_found_even_with_the_anchor_gone(hub):
    """The MAC alone, not the anchor, finds entries written without the key."""
    home, log, anchor, env = hub
    entries = [parse_line(line) for line in lines(log)]
    entries[2] = entries[2] | {"consumer": "GAJ"}
    forged = rechain_without_the_key(entries)
    log.write_bytes(b"".join(forged))
    set_head(log, 6, parse_line(forged[-1])["hash"])
    without_derived_files(log)
    anchor.write_bytes(b"")
    out = verify(home, env)
    assert out.returncode == 1 and "entry 3: edited" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize("how", ["emptied", "deleted"])
def test_an_emptied_or_deleted_log_with_its_head_deleted_is_an_error(hub, how):
    """Before: an empty log without a head verified as intact."""
    home, log, _, env = hub
    if how == "emptied":
        log.write_bytes(b"")
    else:
        log.unlink()
    log.with_name(f"{log.name}.head").unlink()
    without_derived_files(log)
    out = verify(home, env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "the anchor recorded entry 6" in out.stdout and "ends at entry 0" in out.stdout
    assert "head file audit.jsonl.head is missing or empty" in out.stdout
    assert all(line.startswith("log: ") or line.startswith("entry ")
               for line in out.stdout.splitlines()), out.stdout  # one line each


def test_entries_cut_off_the_end_with_the_head_set_back_are_found_against_the_anchor(hub):
    """Before: cutting the last two entries and writing the head of entry 4 verified intact (the
    head is rewritten by the same account that writes the log)."""
    home, log, _, env = hub
    kept = lines(log)[:4]
    log.write_bytes(b"".join(kept))
    set_head(log, 4, parse_line(kept[-1])["hash"])
    without_derived_files(log)
    out = verify(home, env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "entry 6: anchor — the anchor recorded entry 6" in out.stdout
    assert "the log ends at entry 4" in out.stdout


def test_a_log_cut_and_continued_is_found_against_the_anchor(hub):
    """Entries cut off and replaced by new ones with the same numbers: the anchored MACs differ."""
    home, log, _, env = hub
    log.write_bytes(b"".join(lines(log)[:3]))
    set_head(log, 3, parse_line(lines(log)[-1])["hash"])
    write(log, 3, first=100)
    without_derived_files(log)
    out = verify(home, env)
    assert out.returncode == 1
    assert "entry 6: anchor — the log holds another entry 6 than the one the anchor" in out.stdout


def test_the_anchor_is_only_appended_to(hub):
    """Head records (and the key record) are added and never rewritten: what a second session
    finds is kept, and an anchor made append-only by the operator keeps working."""
    home, log, anchor, env = hub
    first = anchor.read_bytes()
    assert first.startswith(b"key ") and b"\nhead 6 " in first
    write(log, 2, first=7)
    assert anchor.read_bytes().startswith(first) and b"\nhead 8 " in anchor.read_bytes()
    if subprocess.run(["chattr", "+a", str(anchor)], capture_output=True).returncode != 0:
        pytest.skip("chattr +a is not available here (needs root and a file system with it)")
    try:
        write(log, 2, first=9)  # opened with O_APPEND only: an append-only file is no obstacle
        with pytest.raises(PermissionError):
            anchor.write_bytes(b"")  # what the writer could no longer do
    finally:
        subprocess.run(["chattr", "-a", str(anchor)], check=True)
    assert b"\nhead 10 " in anchor.read_bytes()
    assert verify(home, env).returncode == 0


@pytest.mark.parametrize("key", WEAK)
def test_verify_refuses_short_or_published_keys_in_one_line(hub, key):
    home, _, _, env = hub
    one_line_refusal(verify(home, env | {"HUILIU_AUDIT_KEY": key}), "HUILIU_AUDIT_KEY")


@pytest.mark.parametrize("key", ["", *WEAK])
def test_the_service_refuses_to_start_on_a_missing_short_or_published_key(tmp_path, key):
    """Before: any key started the service (and with none, a traceback)."""
    env = {**os.environ, "HUILIU_AUDIT_KEY": key,
           "HUILIU_AUDIT_ANCHOR": str(tmp_path / "audit.anchor")}
    env.pop("HUILIU_DEMO", None)
    out = subprocess.run([sys.executable, "-m", "pipelines.cli", "serve", "--home",
                          str(tmp_path / "hub"), "--port", "9"], env=env, capture_output=True,
                         text=True, timeout=120)
    one_line_refusal(out, "HUILIU_AUDIT_KEY")


def test_the_service_and_verify_refuse_to_run_without_an_anchor(hub, tmp_path):
    home, _, _, env = hub
    env = {k: v for k, v in env.items() if k != "HUILIU_AUDIT_ANCHOR"}
    one_line_refusal(verify(home, env), "HUILIU_AUDIT_ANCHOR is not set")
    out = subprocess.run([sys.executable, "-m", "pipelines.cli", "serve", "--home", str(home),
                          "--port", "9"], env=env, capture_output=True, text=True, timeout=120)
    one_line_refusal(out, "HUILIU_AUDIT_ANCHOR is not set")


def test_a_changed_key_is_refused_by_the_service_by_verify_and_by_the_writer(hub):
    """Before: a new key verified the old log as intact and hid its entries from every
    subject's access log."""
    from pipelines.serving.audit_key import AuditKeyError

    home, log, _, env = hub
    other = env | {"HUILIU_AUDIT_KEY": OTHER_KEY}
    one_line_refusal(verify(home, other), "not the key the audit log", "fingerprint")
    out = subprocess.run([sys.executable, "-m", "pipelines.cli", "serve", "--home", str(home),
                          "--port", "9"], env=other, capture_output=True, text=True, timeout=120)
    one_line_refusal(out, "not the key the audit log")
    with pytest.raises(AuditKeyError, match="not the key the audit log"):
        AuditLog(log, OTHER_KEY.encode())
    assert len(lines(log)) == 6  # nothing written under the other key


def test_the_key_fingerprint_beside_the_log_names_the_key_without_revealing_it(hub, tmp_path):
    from pipelines.serving.audit import subject_hash

    _, log, _, _ = hub
    stored = log.with_name(f"{log.name}.key").read_bytes()
    fingerprint = stored.split()[2].decode()
    assert KEY.encode() not in stored
    for plain in (hashlib.sha256, hashlib.blake2b, hashlib.md5, hashlib.sha1):
        assert plain(KEY.encode()).hexdigest()[:len(fingerprint)] not in stored.decode()
    assert fingerprint not in {subject_hash(s, KEY.encode())[:len(fingerprint)]
                               for s in ("", "fingerprint", "chain")}
    other = tmp_path / "other" / "audit.jsonl"
    write(other, 1, key=OTHER_KEY)
    assert other.with_name("audit.jsonl.key").read_bytes().split()[2].decode() != fingerprint


def test_demo_mode_is_explicit(tmp_path, monkeypatch):
    """The demo key is accepted with HUILIU_DEMO=1 only (the anchor is then a file beside the
    log); the same key without it is refused."""
    env = environ(monkeypatch, HUILIU_AUDIT_KEY=DEMO_KEY, HUILIU_DEMO="1")
    home = tmp_path / "demo"
    log = home / "serving" / "audit.jsonl"
    write(log, 3, key=DEMO_KEY)
    assert log.with_name("audit.jsonl.anchor").exists()
    out = verify(home, env)
    assert out.returncode == 0 and "intact" in out.stdout, out.stdout + out.stderr
    one_line_refusal(verify(home, {k: v for k, v in env.items() if k != "HUILIU_DEMO"}),
                     "HUILIU_AUDIT_KEY is a published value")


def test_a_log_of_the_unkeyed_format_is_continued_keyed_and_its_entries_bound(tmp_path,
                                                                             monkeypatch):
    """An earlier version's log (unkeyed sha256 chain, no key file) is kept and continued: the
    access log still finds its entries, and from the first keyed entry on they cannot be
    re-chained unseen."""
    anchor = tmp_path / "audit.anchor"
    env = environ(monkeypatch, HUILIU_AUDIT_KEY=KEY, HUILIU_AUDIT_ANCHOR=str(anchor))
    home = tmp_path / "hub"
    log = home / "serving" / "audit.jsonl"
    log.parent.mkdir(parents=True)
    from pipelines.serving.audit import subject_hash

    old = [{"seq": 0, "at": "2025-01-01T00:00:00.000000+00:00", "consumer": "WJW",
            "purpose": "NEWBORN", "template": "NEWBORN", "case_id": f"OLD{i}",
            "subjects": [subject_hash("1:500103198001020113", KEY.encode())],
            "released": [], "withheld": [], "answer_digest": "0" * 64} for i in range(1, 4)]
    legacy = rechain_without_the_key(old)
    log.write_bytes(b"".join(legacy))
    set_head(log, 3, parse_line(legacy[-1])["hash"])
    write(log, 2, first=4)
    out = verify(home, env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "entries 1–3 predate the keyed chain" in out.stdout
    a = AuditLog(log, KEY.encode())
    assert [e["case_id"] for e in a.about("1:500103198001020113")][:3] == ["OLD1", "OLD2", "OLD3"]
    a.close()
    # an earlier entry edited and the unkeyed part re-chained: the first keyed entry's MAC
    # covers the last unkeyed hash, so the seam shows
    tampered = rechain_without_the_key([parse_line(x) | {"consumer": "FY"} if i == 1
                                        else parse_line(x) for i, x in enumerate(legacy)])
    log.write_bytes(b"".join(tampered) + b"".join(lines(log)[3:]))
    without_derived_files(log)
    out = verify(home, env)
    assert out.returncode == 1 and "entry 4: inserted" in out.stdout, out.stdout


def test_a_key_file_removed_to_call_keyed_entries_unkeyed_is_found(hub):
    """Removing the key file and re-chaining the log without the key, then letting the service
    open it (a new key file: keyed from entry 7) would pass entries 1-6 off as an earlier
    version's; the anchor recorded where the keyed chain began."""
    home, log, _, env = hub
    forged = rechain_without_the_key([parse_line(line) for line in lines(log)])
    log.write_bytes(b"".join(forged))
    set_head(log, 6, parse_line(forged[-1])["hash"])
    log.with_name(f"{log.name}.key").unlink()
    without_derived_files(log)
    write(log, 1, first=7)
    out = verify(home, env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "the key file says the keyed chain starts at entry 7, the anchor recorded 1" in \
        out.stdout
    assert "entry 1: edited" in out.stdout  # checked as keyed, as the anchor says
