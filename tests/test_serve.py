"""`text2node serve` (issue 20): the API through FastAPI's test client, and the CLI as a real
uvicorn server with two worker processes. The pipeline is a real linker over the tiny taxonomy
with the taxonomy's entity ruler in front (`--mentions ruler`)."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import spacy

pytest.importorskip("fastapi", reason="needs the serve extra: pip install 'spacy-text2node[serve]'")
pytest.importorskip("uvicorn", reason="needs the serve extra: pip install 'spacy-text2node[serve]'")
with warnings.catch_warnings():  # starlette asks for httpx2 instead of httpx: not a finding of these tests
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient  # noqa: E402

from spacy_text2node.bulk import load_pipeline  # noqa: E402
from spacy_text2node.bulk.records import doc_to_record  # noqa: E402
from spacy_text2node.serve import ServeSettings, create_app  # noqa: E402

NOTE = "She has bronchial asthma and influenza."
NEG_NOTE = "She has bronchial asthma. She denies influenza."


@pytest.fixture(scope="session")
def serve_linker_dir(phrase_linker_dir):
    """The shared phrase linker (conftest), served with a mention finder in front."""
    return phrase_linker_dir


@pytest.fixture(scope="module")
def client(serve_linker_dir):
    settings = ServeSettings(
        model=str(serve_linker_dir), mentions="ruler", max_chars=2_000, max_batch=4, max_body_bytes=20_000
    )
    with TestClient(create_app(settings)) as c:
        yield c


def _ents(record):
    return [(s["text"], s["concept_id"]) for s in record["spans"]]


# --- linking -----------------------------------------------------------------------


def test_one_text_gets_the_record_of_text2node_link(client, serve_linker_dir):
    r = client.post("/link", json={"text": NOTE, "id": "n1"})
    assert r.status_code == 200, r.text
    expected = doc_to_record(load_pipeline(serve_linker_dir, mentions="ruler")(NOTE), "n1")
    assert r.json() == expected
    assert _ents(r.json()) == [("bronchial asthma", "ASTH"), ("influenza", "FLU")]


def test_batches_keep_order_and_ids(client):
    r = client.post("/link", json={"texts": [NOTE, "No complaints today."]})
    assert r.status_code == 200, r.text
    recs = r.json()["records"]
    assert [rec["id"] for rec in recs] == ["0", "1"]
    assert _ents(recs[0]) == [("bronchial asthma", "ASTH"), ("influenza", "FLU")] and recs[1]["spans"] == []
    r = client.post("/link", json={"records": [{"id": 7, "text": "Flu since Monday."}, {"id": "b", "text": NOTE}]})
    assert [(rec["id"], _ents(rec)) for rec in r.json()["records"]] == [
        ("7", [("Flu", "FLU")]),
        ("b", [("bronchial asthma", "ASTH"), ("influenza", "FLU")]),
    ]


def test_top_k_trims_candidates(client):
    full = client.post("/link", json={"text": NOTE}).json()
    assert max(len(s["candidates"]) for s in full["spans"]) > 1
    one = client.post("/link", json={"text": NOTE, "top_k": 1}).json()
    assert [s["candidates"] for s in one["spans"]] == [s["candidates"][:1] for s in full["spans"]]


def test_render_gives_displacy_html_with_the_text_escaped(client):
    text = 'Asthma <img src=x onerror="alert(1)"> and influenza.'
    rec = client.post("/link", json={"text": text, "render": True}).json()
    assert rec["html"].count('<mark class="entity"') == len(rec["spans"]) == 2
    assert "ASTH Asthma" in rec["html"] and "FLU Influenza" in rec["html"]
    assert "<img" not in rec["html"] and "&lt;img" in rec["html"]


# --- bad requests: a 4xx that says what to send, and the server keeps serving ------------

BAD = [
    (b"", 400, "body is empty"),
    (b"   \n", 400, "body is empty"),
    (b'{"text": "asthma"', 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not UTF-8"),
    (b'["asthma"]', 422, "an array, not a JSON object"),
    (b'"asthma"', 422, "a string, not a JSON object"),
    (b"{}", 422, 'none of "text"'),
    (b'{"text": "a", "texts": ["b"]}', 422, "more than one of"),
    (b'{"txt": "asthma"}', 422, "Unknown field 'txt'"),
    (b'{"text": 5}', 422, '"text" must be a string, not a number'),
    (b'{"text": null}', 422, "missing text"),
    (b'{"text": "  "}', 422, "empty text"),
    (b'{"text": "flu", "id": [1]}', 422, '"id" must be a string or an integer'),
    (b'{"texts": "asthma"}', 422, '"texts" must be an array, not a string'),
    (b'{"texts": []}', 422, '"texts" is empty'),
    (b'{"texts": ["flu", 3]}', 422, '"texts"[1] must be a string'),
    (b'{"texts": ["flu"], "id": "x"}', 422, '"id" goes with "text"; in a batch, send each id'),
    (b'{"records": [{"id": "a"}]}', 422, '"records"[0].text: missing text'),
    (b'{"records": ["flu"]}', 422, '"records"[0] must be an object'),
    (b'{"records": [{"text": "flu", "note": 1}]}', 422, "unknown field 'note'"),
    (b'{"text": "flu", "top_k": 0}', 422, '"top_k" must be an integer of at least 1'),
    (b'{"text": "flu", "render": "yes"}', 422, '"render" must be true or false'),
]


@pytest.mark.parametrize(
    "body,status,fragment", BAD, ids=[b.decode("utf8", "replace")[:30] or "empty" for b, _, _ in BAD]
)
def test_bad_bodies_get_a_4xx_saying_what_to_send(client, body, status, fragment):
    r = client.post("/link", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert fragment in detail
    assert "Send" in detail or "send" in detail  # says what to send instead
    assert client.post("/link", json={"text": NOTE}).status_code == 200  # still serving


def test_text_over_the_limit_is_413_naming_the_flag(client):
    r = client.post("/link", json={"texts": ["flu", "x" * 2_001]})
    assert r.status_code == 413
    assert '"texts"[1]: text has 2,001 characters, over the limit of 2,000' in r.json()["detail"]
    assert "--max-chars" in r.json()["detail"]
    assert client.post("/link", json={"text": "x" * 2_000}).status_code == 200


def test_batch_over_the_limit_is_413_naming_the_flag(client):
    r = client.post("/link", json={"texts": ["flu"] * 5})
    assert r.status_code == 413
    assert "5 texts, over the limit of 4 (--max-batch): send at most 4" in r.json()["detail"]
    assert client.post("/link", json={"texts": ["flu"] * 4}).status_code == 200


def test_body_over_the_limit_is_413_by_length_and_while_streamed(client):
    big = json.dumps({"texts": ["flu " * 1_500] * 4}).encode()
    assert len(big) > 20_000
    r = client.post("/link", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "--max-body-bytes" in r.json()["detail"]
    # no Content-Length: a chunked body is counted as it arrives
    r = client.post("/link", content=(big[i : i + 4096] for i in range(0, len(big), 4096)))
    assert r.status_code == 413 and "more than 20,000 bytes" in r.json()["detail"]
    assert client.post("/link", json={"text": NOTE}).status_code == 200


# --- concepts, health, info, docs, page ----------------------------------------------------


def test_concept_with_its_neighbourhood(client, tiny_taxonomy):
    r = client.get("/concepts/BPNEU")
    assert r.status_code == 200
    c = r.json()
    assert (c["id"], c["label"], c["depth"]) == ("BPNEU", "Bacterial pneumonia", 3)
    assert {p["id"] for p in c["parents"]} == {"PNEU", "BAC"}  # two parents (a DAG)
    assert [a["id"] for a in c["ancestors"]] == tiny_taxonomy.ancestors("BPNEU")
    assert [p["id"] for p in c["path"]] == ["D", "INF", "BAC", "BPNEU"]
    flu = client.get("/concepts/FLU").json()
    assert [s["text"] for s in flu["synonyms"]] == ["Flu", "Grippe"]
    assert flu["definition"].startswith("Acute viral infection")
    root = client.get("/concepts/D").json()
    assert root["path"] == [{"id": "D", "label": "Disease"}] and root["n_children"] == 3
    assert {ch["id"] for ch in root["children"]} == {"INF", "RESP", "MET"}


def test_unknown_concept_is_404_saying_what_to_send(client):
    r = client.get("/concepts/NOPE")
    assert r.status_code == 404
    assert "Unknown concept id 'NOPE'" in r.json()["detail"] and "/link" in r.json()["detail"]
    assert client.get("/concepts/FLU").status_code == 200


def test_health_and_info(client):
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/info").json()
    assert info["pipeline"] == ["entity_ruler", "text2node_linker"]
    assert info["taxonomy"] == {"name": "tiny_taxonomy", "size": 20, "roots": 1}
    assert info["versions"]["spacy"] == spacy.__version__ and info["versions"]["spacy-text2node"]
    assert info["limits"] == {"max_chars": 2_000, "max_batch": 4, "max_body_bytes": 20_000, "timeout": 30.0}
    assert info["negation"] is False


def test_openapi_documents_the_link_body(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/link"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/LinkRequest"}
    assert {"text", "texts", "records", "top_k"} <= set(spec["components"]["schemas"]["LinkRequest"]["properties"])
    assert "RecordIn" in spec["components"]["schemas"]
    assert {"/link", "/concepts/{concept_id}", "/health", "/info"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


def test_review_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and 'src="static/app.js"' in page.text
    for name, kind in (("app.js", "javascript"), ("app.css", "text/css")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"]
    assert "cdn" not in page.text.lower() and "http" not in client.get("/static/app.js").text.split("\n", 3)[-1]


# --- timeout and negation (their own servers) ------------------------------------------------


def test_a_request_over_the_timeout_gets_503_and_the_server_keeps_serving(serve_linker_dir):
    settings = ServeSettings(model=str(serve_linker_dir), mentions="ruler", timeout=0.01)
    long_note = " ".join([NOTE] * 2_000)  # 80,000 characters, 4,000 mentions: far more than 10 ms
    with TestClient(create_app(settings)) as c:
        r = c.post("/link", json={"text": long_note})
        assert r.status_code == 503
        assert "--timeout" in r.json()["detail"] and "longer than the server's limit of 0.01 s" in r.json()["detail"]
        assert c.get("/health").status_code == 200  # answered while the pipeline thread is still busy
        assert c.get("/concepts/FLU").status_code == 200


def test_negation_marks_negated_mentions(serve_linker_dir):
    pytest.importorskip("negspacy", reason="--negation needs negspacy (the serve extra)")
    settings = ServeSettings(model=str(serve_linker_dir), mentions="ruler", negation=True)
    with TestClient(create_app(settings)) as c:
        rec = c.post("/link", json={"text": NEG_NOTE}).json()
        assert [(s["text"], s["concept_id"], s["negated"]) for s in rec["spans"]] == [
            ("bronchial asthma", "ASTH", False),
            ("influenza", "FLU", True),
        ]
        info = c.get("/info").json()
        assert info["negation"] is True and "negex" in info["pipeline"]


def test_settings_from_the_environment_name_what_is_wrong():
    with pytest.raises(ValueError, match="text2node serve MODEL"):
        ServeSettings.from_env({})
    with pytest.raises(ValueError, match="--max-batch must be at least 1"):
        ServeSettings(model="x", max_batch=0).check()
    s = ServeSettings(model="m", mentions="ruler", span_keys=("ents", "sc"), top_k=3)
    assert ServeSettings.from_env({"TEXT2NODE_SERVE_SETTINGS": s.to_env()}) == s


# --- the CLI: a real uvicorn server ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLI = [sys.executable, "-c", "from spacy_text2node.cli import main; main()"]


@contextlib.contextmanager
def running_server(args, startup_s: float = 180.0):
    """Start `text2node serve ARGS --port <free>` and yield its base URL once /health answers."""
    import httpx

    port = free_port()
    proc = subprocess.Popen(
        CLI + ["serve", *map(str, args), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"text2node serve exited with {proc.returncode}:\n{proc.stdout.read()}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"text2node serve did not answer /health within {startup_s:.0f} s")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_cli_serves_with_two_workers(serve_linker_dir):
    """The real command: uvicorn with the app factory in two worker processes (about 20-50 s)."""
    import httpx

    with running_server([serve_linker_dir, "--mentions", "ruler", "--workers", "2", "--top-k", "2"]) as url:
        rec = httpx.post(url + "/link", json={"text": NOTE}, timeout=30).json()
        assert _ents(rec) == [("bronchial asthma", "ASTH"), ("influenza", "FLU")]
        assert all(len(s["candidates"]) <= 2 for s in rec["spans"])
        info = httpx.get(url + "/info", timeout=30).json()
        assert info["model"] == str(Path(serve_linker_dir).resolve()) and info["top_k"] == 2
        bad = httpx.post(url + "/link", json={"texts": "flu"}, timeout=30)
        assert bad.status_code == 422 and "must be an array" in bad.json()["detail"]


@pytest.mark.parametrize(
    "args,code,fragment",
    [
        (["/no/such/pipeline"], 1, "Cannot load the pipeline '/no/such/pipeline'"),
        (["{linker}", "--mentions", "regex"], 2, "Unknown --mentions 'regex'"),
        (["{linker}", "--max-batch", "0"], 2, "--max-batch must be at least 1"),
        (["{linker}", "--timeout", "0"], 2, "--timeout must be a positive number"),
        (["{linker}", "--workers", "0"], 2, "--workers must be at least 1"),
    ],
)
def test_cli_mistakes_are_one_line(serve_linker_dir, args, code, fragment):
    from typer.testing import CliRunner

    from spacy_text2node.cli import app

    args = [a.format(linker=serve_linker_dir) for a in args]
    result = CliRunner().invoke(app, ["serve", *args, "--port", str(free_port())])
    assert result.exit_code == code, result.output
    assert fragment in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
