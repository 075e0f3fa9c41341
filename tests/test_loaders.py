"""Document loaders: every format, and every kind of bad input gives a clear DocumentError."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from workbench.corpus.loaders import CorpusError, DocumentError, load_document, load_documents, scan_documents


def make_pdf(text_lines: list[str], title: str = "") -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    if title:
        c.setTitle(title)
    for i, line in enumerate(text_lines):
        c.drawString(72, 720 - 16 * i, line)
    c.showPage()
    c.save()
    return buf.getvalue()


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def test_text_and_markdown(tmp_path):
    write(tmp_path / "a.txt", "The Osprey-7 weighs 2.4 kg.\r\n")
    write(tmp_path / "sub/b.md", "# Falcon X2\n\nA handheld calibrator.\n")
    a = load_document(tmp_path / "a.txt", tmp_path)
    b = load_document(tmp_path / "sub/b.md", tmp_path)
    assert a.doc_id == "a.txt" and a.text == "The Osprey-7 weighs 2.4 kg." and a.meta["encoding"] == "utf-8"
    assert b.doc_id == "sub/b.md" and b.meta["format"] == "markdown" and b.meta["title"] == "Falcon X2"
    assert "handheld calibrator" in b.text and Path(b.path).is_absolute()


def test_utf8_bom_and_utf16_bom(tmp_path):
    write(tmp_path / "bom.txt", "\ufeffcafé".encode())
    write(tmp_path / "u16.txt", "naïve résumé".encode("utf-16"))
    assert load_document(tmp_path / "bom.txt", tmp_path).text == "café"
    doc = load_document(tmp_path / "u16.txt", tmp_path)
    assert doc.text == "naïve résumé" and doc.meta["encoding"] == "utf-16"


def test_cp1252_is_decoded_and_recorded(tmp_path):
    write(tmp_path / "legacy.txt", "Café “Kestrel” – price 5 €, déjà vu.".encode("cp1252"))
    doc = load_document(tmp_path / "legacy.txt", tmp_path)
    assert doc.text == "Café “Kestrel” – price 5 €, déjà vu." and doc.meta["encoding"] == "cp1252"


def test_undecidable_encoding_is_an_error(tmp_path):
    write(tmp_path / "sjis.txt", "日本語のテキストです。これは説明文です。".encode("shift_jis"))
    with pytest.raises(DocumentError, match=r"sjis\.txt: .*neither UTF-8 nor sensible cp1252.*re-save it as UTF-8"):
        load_document(tmp_path / "sjis.txt", tmp_path)


def test_binary_renamed_txt_is_an_error(tmp_path):
    write(tmp_path / "nul.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(DocumentError, match=r"nul\.txt: contains NUL bytes"):
        load_document(tmp_path / "nul.txt", tmp_path)
    write(tmp_path / "ctl.txt", bytes(range(1, 32)) * 20 + b"some text")
    with pytest.raises(DocumentError, match=r"ctl\.txt: .*control characters, so it looks binary"):
        load_document(tmp_path / "ctl.txt", tmp_path)


def test_size_cap_and_empty_file(tmp_path):
    write(tmp_path / "big.txt", "word " * 100)
    with pytest.raises(DocumentError, match=r"big\.txt: is .* MB, over the .* per-file limit"):
        load_document(tmp_path / "big.txt", tmp_path, max_bytes=100)
    write(tmp_path / "empty.md", "  \n\n ")
    with pytest.raises(DocumentError, match=r"empty\.md: yields no text"):
        load_document(tmp_path / "empty.md", tmp_path)


def test_html_drops_scripts_keeps_title_and_table_rows(tmp_path):
    html = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>Price List</title>
    <style>body { color: red }</style><script>var secret = "tracking";</script></head>
    <body><h1>Prices</h1><p>All prices in <b>US</b> dollars.</p><noscript>enable js</noscript>
    <template><p>hidden template</p></template>
    <table><tr><th>SKU</th><th>Price</th></tr><tr><td>WRN-1</td><td>$89</td></tr></table></body></html>"""
    write(tmp_path / "p.html", html)
    doc = load_document(tmp_path / "p.html", tmp_path)
    assert doc.meta["title"] == "Price List" and doc.meta["format"] == "html"
    assert "tracking" not in doc.text and "color" not in doc.text and "enable js" not in doc.text and "hidden template" not in doc.text
    assert "All prices in US dollars." in doc.text  # inline tags do not break the sentence
    assert "WRN-1 | $89" in doc.text and doc.text.startswith("Price List")


def test_html_declared_legacy_charset(tmp_path):
    html = '<html><head><meta charset="windows-1252"><title>Caf\xe9</title></head><body><p>Cr\xe8me br\xfbl\xe9e</p></body></html>'
    write(tmp_path / "c.htm", html.encode("cp1252"))
    doc = load_document(tmp_path / "c.htm", tmp_path)
    assert "Crème brûlée" in doc.text and doc.meta["encoding"] == "windows-1252"


def test_pdf_text_pages_and_title(tmp_path):
    write(tmp_path / "h.pdf", make_pdf(["Annual leave is 27 days.", "Carry-over is 5 days."], title="Handbook"))
    doc = load_document(tmp_path / "h.pdf", tmp_path)
    assert "Annual leave is 27 days." in doc.text and "Carry-over is 5 days." in doc.text
    assert doc.meta["format"] == "pdf" and doc.meta["pages"] == 1 and doc.meta["title"] == "Handbook"


def test_encrypted_pdf_is_an_error(tmp_path):
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(make_pdf(["secret text"]))))
    writer.encrypt("hunter2")
    out = io.BytesIO()
    writer.write(out)
    write(tmp_path / "locked.pdf", out.getvalue())
    with pytest.raises(DocumentError, match=r"locked\.pdf: PDF is encrypted.*unprotected copy"):
        load_document(tmp_path / "locked.pdf", tmp_path)


def test_malformed_and_fake_pdf_are_errors(tmp_path):
    write(tmp_path / "bad.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\ngarbage\n")
    with pytest.raises(DocumentError, match=r"bad\.pdf: PDF is malformed"):
        load_document(tmp_path / "bad.pdf", tmp_path)
    write(tmp_path / "fake.pdf", "just text")
    with pytest.raises(DocumentError, match=r"fake\.pdf: is not a PDF"):
        load_document(tmp_path / "fake.pdf", tmp_path)


def test_pdf_without_text_is_an_error(tmp_path):
    write(tmp_path / "blank.pdf", make_pdf([]))
    with pytest.raises(DocumentError, match=r"blank\.pdf: yields no text; .*OCR"):
        load_document(tmp_path / "blank.pdf", tmp_path)


def test_pdf_timeout_and_memory_cap_give_errors_not_hangs(tmp_path):
    pdf = write(tmp_path / "ok.pdf", make_pdf(["fine"]))
    with pytest.raises(DocumentError, match=r"ok\.pdf: PDF parsing took longer than"):
        load_document(pdf, tmp_path, pdf_timeout_s=0.001)
    with pytest.raises(DocumentError, match=r"ok\.pdf: PDF parser"):
        load_document(pdf, tmp_path, pdf_memory_bytes=20 * 2**20)


def test_load_documents_walks_sorted_skips_hidden_lists_unsupported(tmp_path):
    docs = tmp_path / "docs"
    write(docs / "b.md", "# B\nbee")
    write(docs / "a/z.txt", "zed")
    write(docs / ".hidden.txt", "secret")
    write(docs / ".git/config.txt", "secret")
    write(docs / "sheet.docx", b"PK\x03\x04")
    seen: list[tuple[str, float]] = []
    found, problems = load_documents(docs, progress=lambda msg, frac: seen.append((msg, frac)))
    assert [d.doc_id for d in found] == ["a/z.txt", "b.md"]
    assert len(problems) == 1 and "sheet.docx" in problems[0] and "unsupported" in problems[0]
    assert seen and seen[-1][1] == 1.0


def test_unreadable_file_raises_unless_allowed(tmp_path):
    docs = tmp_path / "docs"
    write(docs / "good.txt", "good text")
    write(docs / "bad.txt", b"\x00\x01binary")
    with pytest.raises(DocumentError, match=r"bad\.txt: contains NUL bytes.*allow unreadable"):
        load_documents(docs)
    found, problems = load_documents(docs, allow_unreadable=True)
    assert [d.doc_id for d in found] == ["good.txt"]
    assert len(problems) == 1 and "bad.txt" in problems[0] and "NUL" in problems[0]
    _, errors, _ = scan_documents(docs)
    assert errors[0].file.endswith("bad.txt") and errors[0].line is None


def test_no_text_anywhere_is_a_corpus_error(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    with pytest.raises(CorpusError, match=r"docs: no document yields text; add \.txt/\.md/\.pdf/\.html files"):
        load_documents(docs)
    write(docs / "bad.txt", b"\x00\x00")
    with pytest.raises(CorpusError, match="no document yields text"):
        load_documents(docs, allow_unreadable=True)
    with pytest.raises(CorpusError, match="no docs/ folder"):
        load_documents(tmp_path / "missing")


def _bomb_pdf(megabytes: int) -> bytes:
    """A one-page PDF whose content stream inflates from ~100 KB to ``megabytes`` MB."""
    import zlib

    comp = zlib.compress(b"BT /F1 12 Tf 72 720 Td (x) Tj ET\n" + b" " * (megabytes * 2**20), 9)
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(comp) + comp + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objs, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + obj + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets))
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref))
    return out.getvalue()


def test_decompression_bomb_pdf_is_refused(tmp_path):
    pdf = write(tmp_path / "bomb.pdf", _bomb_pdf(120))
    assert pdf.stat().st_size < 1_000_000
    with pytest.raises(DocumentError, match=r"bomb\.pdf: PDF (expands past the decompression limit|needs more than)"):
        load_document(pdf, tmp_path)
