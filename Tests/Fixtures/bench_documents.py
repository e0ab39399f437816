#!/usr/bin/python3
"""Write the benchmark's large documents (scripts/bench.sh): plain text files, nothing checked in.

    /usr/bin/python3 Tests/Fixtures/bench_documents.py web OUT.html --rows N [--title TITLE]
    /usr/bin/python3 Tests/Fixtures/bench_documents.py writer OUT.fodt --paragraphs N

web: a page of N table rows, each a label, a check box, a text input and a button (a form an
agent would read), under a heading and a short form. Chromium exposes about 10 nodes per row,
Firefox about 7 (Firefox keeps text in its parent instead of text nodes of their own).
writer: a flat ODF text document of N short paragraphs, every tenth a heading. Writer exposes
only the paragraphs on screen (its document manages its descendants), so the app's tree is
mostly its menus and tool bars: about 2,000 nodes whatever N is.
"""
import argparse
import html


def web(path, rows, title):
    out = [f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title></head><body>',
           f"<h1>{html.escape(title)}</h1>",
           '<form><label for="q">Search</label> <input id="q" type="search"> <button type="submit">Go</button></form>',
           "<table><thead><tr><th>Item</th><th>Done</th><th>Note</th><th>Action</th></tr></thead><tbody>"]
    for i in range(rows):
        out.append(f'<tr><td>Item {i}</td><td><input type="checkbox" aria-label="Done {i}"></td>'
                   f'<td><input type="text" aria-label="Note {i}"></td><td><button>Open {i}</button></td></tr>')
    out.append("</tbody></table></body></html>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out))


def writer(path, paragraphs):
    body = []
    for i in range(paragraphs):
        if i % 10 == 0:
            body.append(f'<text:h text:outline-level="1">Section {i // 10 + 1}</text:h>')
        body.append(f"<text:p>Paragraph {i}: deskgate reads this document through AT-SPI.</text:p>")
    with open(path, "w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
                'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.3" '
                'office:mimetype="application/vnd.oasis.opendocument.text">\n'
                "<office:body><office:text>\n" + "\n".join(body) + "\n</office:text></office:body></office:document>\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["web", "writer"])
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=500)
    ap.add_argument("--paragraphs", type=int, default=200)
    ap.add_argument("--title", default="deskgate bench page")
    args = ap.parse_args()
    if args.kind == "web":
        web(args.out, args.rows, args.title)
    else:
        writer(args.out, args.paragraphs)


if __name__ == "__main__":
    main()
