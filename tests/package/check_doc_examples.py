#!/usr/bin/env python3
"""docs/library.md shows the example programs verbatim (#17 item 5): CTest package.doc_examples.

    check_doc_examples.py SOURCE_DIR DOC REQUIRED_FILE...
    check_doc_examples.py --update SOURCE_DIR DOC    rewrites DOC's copies from the files

A fenced block whose opening fence names a file after the language (```c examples/c/embed.c) must
equal that file (relative to SOURCE_DIR) byte for byte, and every REQUIRED_FILE must exist and be
shown by such a block. Prints a unified diff for a copy that differs.
"""
import difflib
import os
import re
import sys


def tagged_blocks(text):
    """(path, content, line number) of each fenced block whose fence names a path."""
    blocks, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        m = re.match(r"^(`{3,})[A-Za-z0-9_+-]*\s+(\S+)\s*$", lines[i])
        if not m:
            i += 1
            continue
        fence, path, start = m.group(1), m.group(2), i + 1
        j = start
        while j < len(lines) and lines[j].rstrip() != fence:
            j += 1
        if j == len(lines):
            sys.exit(f"check_doc_examples: the block for {path} at line {start} is not closed")
        blocks.append((path, "\n".join(lines[start:j]) + "\n", start))
        i = j + 1
    return blocks


def update(src, doc):
    """Replaces the content of every tagged block with its file's."""
    path = os.path.join(src, doc)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for name, content, _ in tagged_blocks(text):
        with open(os.path.join(src, name), encoding="utf-8") as f:
            new = f.read()
        m = re.search(r"^(`{3,})[A-Za-z0-9_+-]*\s+" + re.escape(name) + r"\s*\n", text, re.M)
        start = m.end()
        text = text[:start] + new + text[start + len(content):]
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--update":
        update(sys.argv[2], sys.argv[3])
        return 0
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    src, doc = sys.argv[1], sys.argv[2]
    with open(os.path.join(src, doc), encoding="utf-8") as f:
        blocks = tagged_blocks(f.read())
    problems, shown = [], set()
    for path, content, line in blocks:
        shown.add(path)
        full = os.path.join(src, path)
        if not os.path.isfile(full):
            problems.append(f"{doc}:{line}: shows {path}, which does not exist")
            continue
        with open(full, encoding="utf-8") as f:
            actual = f.read()
        if content != actual:
            diff = difflib.unified_diff(actual.splitlines(True), content.splitlines(True), path, f"{doc}:{line}")
            problems.append(f"{doc}:{line}: the copy of {path} differs from the file (tests/package/check_doc_examples.py --update . {doc} copies it):\n" + "".join(diff))
    for path in sys.argv[3:]:
        if not os.path.isfile(os.path.join(src, path)):
            problems.append(f"required example {path} does not exist")
        elif path not in shown:
            problems.append(f"{doc} does not show {path} (a block opening with ```<lang> {path})")
    for p in problems:
        print("check_doc_examples: " + p, file=sys.stderr)
    if problems:
        return 1
    print(f"check_doc_examples: {len(blocks)} examples in {doc} equal their files: " + ", ".join(sorted(shown)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
