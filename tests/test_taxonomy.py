"""Tests for the Taxonomy and its loaders (issue: foundation)."""

import gzip
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import FIXTURES, shared_file
from typer.testing import CliRunner

from spacy_text2node import Taxonomy, TaxonomyBuilder, TaxonomyError
from spacy_text2node.cli import app


# --- core -------------------------------------------------------------------------
def test_tiny_hierarchy(tiny_taxonomy):
    t = tiny_taxonomy
    assert len(t) == 20
    assert t.roots == ["D"]
    assert t.parents("BPNEU") == ["PNEU", "BAC"]
    assert sorted(t.children("VIR")) == ["COVID", "FLU"]
    assert t.ancestors("BPNEU") == ["BAC", "PNEU", "INF", "RESP", "D"]  # nearest first, then node order
    assert set(t.descendants("INF")) == {"VIR", "BAC", "FLU", "COVID", "TB", "BPNEU"}
    assert t.depth("D") == 0 and t.depth("BPNEU") == 3 and t.depth("T2DMC") == 4
    assert t.distance("FLU", "FLU") == 0
    assert t.distance("FLU", "COVID") == 2  # siblings under VIR (and RESP)
    assert t.distance("FLU", "TB") == 4  # FLU-VIR-INF-BAC-TB
    assert t.distance("BPNEU", "TB") == 2  # through BAC, not through D
    assert t.distance("T2DMC", "ASTH") == 6
    assert t.label("FLU") == "Influenza"
    assert [s.text for s in t.synonyms("FLU")] == ["Flu", "Grippe"]
    assert t.definition("D") == "A condition of abnormal function."
    assert t.texts("TB") == ["Tuberculosis", "TB", "Consumption"]
    assert "FLU" in t and "NOPE" not in t
    assert sorted(t.leaves) == sorted(c for c in t if not t.children(c))


def test_distance_without_common_ancestor():
    b = TaxonomyBuilder("mem")
    b.add("A", "a")
    b.add("A1", "a1", parents=["A"])
    b.add("B", "b")
    b.add("B1", "b1", parents=["B"])
    t = b.build()
    assert t.distance("A1", "B1") == 4  # through a virtual super-root
    assert t.distance("A1", "A") == 1


def test_csr_aligned_to_node_order(tiny_taxonomy):
    t = tiny_taxonomy
    indptr, indices = t.csr()
    assert indptr.dtype == np.int64 and indices.dtype == np.int32
    assert len(indptr) == len(t) + 1
    for i, cid in enumerate(t.ids):
        nbrs = {t.id_at(j) for j in indices[indptr[i] : indptr[i + 1]]}
        assert nbrs == set(t.parents(cid)) | set(t.children(cid))
    up_ptr, up_idx = t.csr(undirected=False)
    assert up_ptr[-1] == sum(len(t.parents(c)) for c in t) == 22
    for i, cid in enumerate(t.ids):
        assert [t.id_at(j) for j in up_idx[up_ptr[i] : up_ptr[i + 1]]] == sorted(t.parents(cid), key=t.index)


def test_networkx_export(tiny_taxonomy):
    g = tiny_taxonomy.to_networkx()
    assert g.number_of_nodes() == 20 and g.number_of_edges() == 22
    assert g.has_edge("PNEU", "BPNEU") and g.has_edge("BAC", "BPNEU")
    assert g.nodes["FLU"]["label"] == "Influenza"


def test_serialization_round_trip(tiny_taxonomy, tmp_path):
    t = tiny_taxonomy
    t2 = Taxonomy.from_bytes(t.to_bytes())
    assert t2 == t
    t.to_disk(tmp_path / "tax")
    t3 = Taxonomy.from_disk(tmp_path / "tax")
    assert t3 == t and t3.synonyms("FLU") == t.synonyms("FLU")
    assert json.loads((tmp_path / "tax" / "meta.json").read_text())["concepts"] == 20
    with pytest.raises(TaxonomyError, match="no taxonomy.msgpack"):
        Taxonomy.from_disk(tmp_path / "missing")


def test_subtree(tiny_taxonomy):
    sub = tiny_taxonomy.subtree(["RESP"])
    assert set(sub.ids) == {"RESP", "FLU", "COVID", "PNEU", "BPNEU", "ASTH", "COPD"}
    assert sub.roots == ["RESP"]
    assert sub.parents("BPNEU") == ["PNEU"]  # BAC is outside the subtree


# --- bad input ----------------------------------------------------------------------
def _write(tmp_path, name, text, encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def test_csv_unknown_parent_names_line(tmp_path):
    p = _write(tmp_path, "t.csv", "id,label,parents,synonyms\nA,Alpha,,\nB,Beta,A,\nC,Gamma,Z,\n")
    with pytest.raises(ValueError, match=r"t\.csv, line 4: .*'C' has parent 'Z'"):
        Taxonomy.from_csv(p)


def test_cycle_names_nodes(tmp_path):
    p = _write(tmp_path, "t.csv", "id,label,parents,synonyms\nR,Root,,\nA,Alpha,C|R,\nB,Beta,A,\nC,Gamma,B,\n")
    with pytest.raises(ValueError, match=r"is-a cycle: .*A.*B.*C|is-a cycle: .*C.*B.*A"):
        Taxonomy.from_csv(p)
    t = Taxonomy.from_csv(p, on_error="skip")
    assert t.meta["skipped"] == 1 and t.meta["skipped_examples"][0].endswith("line 4: is-a cycle: A -> C -> B -> A")
    # skipping drops the edge that closes the cycle (B -> A), so B becomes a root
    assert len(t) == 4 and t.roots == ["R", "B"]
    assert t.parents("A") == ["C", "R"] and t.parents("B") == [] and t.parents("C") == ["B"]


@pytest.mark.parametrize(
    "body,problem",
    [
        ("A,Alpha,,\nA,Again,,\n", "duplicate concept id 'A'"),
        ("A,,,\n", "empty label"),
        ("A,Alpha,,,extra\n", "expected 4 columns"),
        (",Alpha,,\n", "empty concept id"),
    ],
)
def test_csv_bad_rows(tmp_path, body, problem):
    p = _write(tmp_path, "t.csv", "id,label,parents,synonyms\n" + body)
    with pytest.raises(ValueError, match=problem):
        Taxonomy.from_csv(p)


def test_skip_reports_count_and_examples(tmp_path, caplog):
    p = _write(tmp_path, "t.csv", "id,label,parents,synonyms\nA,Alpha,,\nB,,A,\nC,Gamma,Q,\nD,Delta,A,x|y\n")
    t = Taxonomy.from_csv(p, on_error="skip")
    assert set(t.ids) == {"A", "C", "D"}
    assert t.parents("C") == []  # the unknown parent edge is dropped, the concept kept
    assert t.meta["skipped"] == 2
    assert "line 3" in t.meta["skipped_examples"][0] and "line 4" in t.meta["skipped_examples"][1]
    assert "skipped 2" in caplog.text


def test_wrong_encoding_names_line(tmp_path):
    p = _write(tmp_path, "t.csv", "id,label,parents,synonyms\nA,Alpha,,\nB,Bêta,A,\n", encoding="latin-1")
    with pytest.raises(ValueError, match=r"line 3: not valid UTF-8"):
        Taxonomy.from_csv(p)


def test_wrong_format(tmp_path):
    p = _write(tmp_path, "t.obo", "id,label\nA,Alpha\n")
    with pytest.raises(ValueError, match="does not look like OBO"):
        Taxonomy.from_obo(p)
    p = _write(tmp_path, "x.csv", "code,name\nA,Alpha\n")
    with pytest.raises(ValueError, match=r"line 1: no 'id' column"):
        Taxonomy.from_csv(p)
    with pytest.raises(ValueError, match="no such file"):
        Taxonomy.from_jsonl(tmp_path / "absent.jsonl")
    with pytest.raises(ValueError, match="does not look like CTD"):
        Taxonomy.from_ctd_medic(_write(tmp_path, "c.tsv", "a\tb\n"))


def test_tsv_gzip_and_quoted_fields(tmp_path):
    p = tmp_path / "t.tsv.gz"
    with gzip.open(p, "wt", encoding="utf-8") as f:
        f.write("id\tlabel\tparents\tsynonyms\tdefinition\nA\tAlpha\t\t\t\nB\tBeta\tA\tb1|b2\tsecond\n")
    t = Taxonomy.from_csv(p)
    assert t.parents("B") == ["A"] and [s.text for s in t.synonyms("B")] == ["b1", "b2"]
    q = _write(tmp_path, "q.csv", 'id,label,parents,synonyms\nA,"Alpha, the first",,"x|y"\nB,"Multi\nline",A,\n')
    t = Taxonomy.from_csv(q)
    assert t.label("A") == "Alpha, the first" and t.label("B") == "Multi\nline"


def test_jsonl(tmp_path):
    rows = [
        {"id": "A", "label": "Alpha", "synonyms": ["a"], "xrefs": ["OLD:1"]},
        {
            "id": "B",
            "label": "Beta",
            "parents": ["A"],
            "synonyms": [{"text": "bee", "type": "EXACT"}],
            "definition": "b",
        },
    ]
    p = _write(tmp_path, "t.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    t = Taxonomy.from_jsonl(p)
    assert t.parents("B") == ["A"] and t.synonyms("B")[0].type == "EXACT"
    assert t.resolve("OLD:1") == "A" and t.label("OLD:1") == "Alpha"
    bad = _write(tmp_path, "bad.jsonl", json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 2: not valid JSON"):
        Taxonomy.from_jsonl(bad)


# --- real sources --------------------------------------------------------------------
def test_snomed_rf2_fixture():
    t = Taxonomy.from_snomed_rf2(FIXTURES / "snomed_rf2")
    assert len(t) == 7  # 8 concepts, one inactive
    assert "1000007" not in t and t.meta["dropped_inactive"] == 1
    assert t.roots == ["1000001"]
    assert t.label("1000006") == "Infective pneumonia"  # preferred term of the language refset
    assert sorted(t.parents("1000006")) == ["1000004", "1000005"]  # a DAG; finding-site ignored
    assert t.parents("1000005") == ["1000003"]  # the inactive is-a to 1000008 is ignored
    syns = {(s.text, s.type) for s in t.synonyms("1000006")}
    assert ("Infective pneumonia (disorder)", "fsn") in syns and ("Pneumonia due to infection", "synonym") in syns
    assert "Lung infection NOS" not in {s.text for s in t.synonyms("1000006")}  # inactive description
    assert t.distance("1000006", "1000008") == 5


def test_icd10cm(icd10cm):
    t = icd10cm
    assert len(t) == 98505
    assert t.parents("E11.9") == ["E11"]
    assert t.distance("E11.9", "E10.9") == 4
    assert t.parents("E11") == ["E08-E13"]
    assert "Classical cholera" in [s.text for s in t.synonyms("A00.0")]
    assert {s.type for s in t.synonyms("A00.0")} == {"inclusion"}
    assert len(t.roots) == 22 and t.roots[0] == "1"
    # single-category blocks stay distinct from their category
    assert t.parents("B10") == ["B10-B10"] and t.parents("B10-B10") == ["1"]
    # every inclusion term is kept: DATA.md's 12,589 terms on 6,815 codes counts the
    # 6 single-category blocks' 15 terms twice (get_all_codes lists those codes twice)
    inclusion = [c for c in t for s in t.synonyms(c) if s.type == "inclusion"]
    assert len(inclusion) == 12574 and len(set(inclusion)) == 6809


def test_icd10cm_includes_notes_and_nonessential_variants(icd10cm):
    """A bare "hypertension" must find I10 by a string of I10's own: the includes note
    and the forms without ICD-10-CM's nonessential words are synonyms."""
    t = icd10cm

    def syns(cid, kind):
        return [s.text for s in t.synonyms(cid) if s.type == kind]

    assert "high blood pressure" in syns("I10", "includes")
    assert {"hypertension", "Essential hypertension"} <= set(syns("I10", "variant"))
    assert "Pneumonia" in syns("J18.9", "variant")
    assert "Urinary tract infection" in syns("N39.0", "variant")
    assert "diabetes" in syns("E11", "variant")
    # a laterality is a detail, not a default: no "Infective myositis" for the left arm
    assert "Infective myositis" not in syns("M60.001", "variant")
    # a variant that another branch also has says nothing about which is meant
    owners = {}
    for c in t:
        for s in t.synonyms(c):
            if s.type == "variant":
                owners.setdefault(s.text.lower(), set()).add(c)
    for text, cids in owners.items():
        for a in cids:
            for b in cids:
                assert a == b or a in t.ancestors(b) or b in t.ancestors(a), (text, a, b)
    assert "poisoning by" not in owners
    plain = Taxonomy.from_icd10cm(includes_notes=False, variants=False)
    assert {s.type for c in plain for s in plain.synonyms(c)} == {"inclusion"}


@pytest.mark.parametrize(
    "text,variant",
    [
        ("Essential (primary) hypertension", "Essential hypertension"),
        ("Pneumonia, unspecified organism", "Pneumonia"),
        ("Urinary tract infection, site not specified", "Urinary tract infection"),
        ("Heart failure, unspecified", "Heart failure"),
        ("Endemic goiter NOS", "Endemic goiter"),
        ("Migraine, unspecified, not intractable", "Migraine, not intractable"),
        ("Infective myositis, unspecified right arm", None),
        ("Thyrotoxicosis, unspecified without thyrotoxic crisis or storm", None),
        ("Poisoning by, adverse effect of and underdosing of unspecified systemic antibiotic", None),
        ("Cholera", None),
    ],
)
def test_nonessential_variant(text, variant):
    from spacy_text2node.taxonomy.loaders.icd10cm import nonessential_variant

    assert nonessential_variant(text) == variant


def test_ctd_medic():
    t = Taxonomy.from_ctd_medic(shared_file("ctd_medic", "CTD_diseases.tsv.gz"))
    assert len(t) == 11865
    assert t.roots == ["MESH:C"]
    assert len(t.parents("MESH:C579850")) == 4  # MeSH is a DAG
    # alternative ids resolve: OMIM, DO, and bare MeSH ids as NCBI Disease cites them
    assert t.resolve("OMIM:264300") == "MESH:C537805"
    assert t.resolve("C537805") == "MESH:C537805"
    assert t.label("OMIM:264300") == "17-Hydroxysteroid Dehydrogenase Deficiency"


def test_hpo_obo():
    path = shared_file("hpo_2013", "hp.obo")
    t = Taxonomy.from_obo(path)
    n_terms = path.read_text(encoding="utf-8").count("[Term]")
    assert t.meta["dropped_obsolete"] == 44
    assert len(t) == n_terms - 44
    assert t.roots == ["HP:0000001"]
    assert t.parents("HP:0000002") == ["HP:0001507"]
    assert ("Multicystic dysplastic kidney", "EXACT") in {(s.text, s.type) for s in t.synonyms("HP:0000003")}
    assert t.resolve("HP:0004715") == "HP:0000003"  # alt_id
    assert t.definition("HP:0000003").startswith("Multicystic dysplasia")


def test_obo_obsolete_and_scopes(tmp_path):
    p = _write(
        tmp_path,
        "t.obo",
        "format-version: 1.4\n\n[Term]\nid: X:1\nname: root\n\n[Term]\nid: X:2\nname: child\n"
        'synonym: "kid" EXACT []\nsynonym: "offspring" BROAD []\nis_a: X:1 ! root\n\n'
        "[Term]\nid: X:3\nname: old\nis_obsolete: true\n\n[Typedef]\nid: part_of\nname: part of\n",
    )
    t = Taxonomy.from_obo(p, synonym_scopes=("EXACT",))
    assert t.ids == ["X:1", "X:2"] and t.meta["dropped_obsolete"] == 1
    assert [s.text for s in t.synonyms("X:2")] == ["kid"]


# --- registry, entry points, CLI -------------------------------------------------------
def test_registry_in_fresh_interpreter():
    code = (
        "import spacy, sys\n"
        "assert 'spacy_text2node' not in sys.modules\n"
        "f = spacy.registry.misc.get('spacy-text2node.CSV.v1')\n"
        f"t = f(path={str(FIXTURES / 'tiny_taxonomy.csv')!r})\n"
        "g = spacy.registry.misc.get('spacy-text2node.ICD10CM.v1')\n"
        "print(len(t), g.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["20", "make_icd10cm_loader"]


def test_cli_build_and_info(tmp_path):
    runner = CliRunner()
    out = tmp_path / "tax"
    res = runner.invoke(app, ["taxonomy", "build", str(FIXTURES / "tiny_taxonomy.csv"), str(out), "--format", "csv"])
    assert res.exit_code == 0, res.output
    assert Taxonomy.from_disk(out) == Taxonomy.from_csv(FIXTURES / "tiny_taxonomy.csv")
    res = runner.invoke(app, ["taxonomy", "info", str(out)])
    assert res.exit_code == 0, res.output
    assert "concepts" in res.output and "depth" in res.output and "Roots (1): D" in res.output
    res = runner.invoke(app, ["taxonomy", "info", str(out), "--json"])
    info = json.loads(res.output)
    assert (
        info["concepts"] == 20
        and info["roots"] == ["D"]
        and info["depth_histogram"] == {"0": 1, "1": 3, "2": 11, "3": 4, "4": 1}
    )
    bad = _write(tmp_path, "bad.csv", "id,label,parents,synonyms\nA,Alpha,Z,\n")
    res = runner.invoke(app, ["taxonomy", "build", str(bad), str(tmp_path / "x"), "--format", "csv"])
    # the message wraps at the terminal width, wherever the (long) tmp path puts the break
    assert res.exit_code == 1 and "line 2" in " ".join(res.output.split())
    res = runner.invoke(
        app, ["taxonomy", "build", str(bad), str(tmp_path / "x"), "--format", "csv", "--on-error", "skip"]
    )
    assert res.exit_code == 0 and "Skipped 1" in res.output


def test_console_script(tmp_path):
    res = subprocess.run(["text2node", "taxonomy", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "build" in res.stdout


def test_strings_are_every_label_and_synonym_with_its_concept_index(tiny_taxonomy):
    texts, node = tiny_taxonomy.strings()
    assert node.dtype == np.int32
    assert list(zip([tiny_taxonomy.ids[n] for n in node], texts)) == list(tiny_taxonomy.iter_texts())
    assert len(texts) > len(tiny_taxonomy)  # synonyms too
