"""Format parsers: a file in, a list of structural blocks out (JSON-serialisable dicts).

Blocks keep the structure chunking needs:
``{"type": "heading", "text", "level"}``, ``{"type": "paragraph", "text"}`` and
``{"type": "table", "header": [...], "rows": [[...]], "first_row": n}``; each may carry ``page``
(PDF) or ``sheet`` (XLSX). These functions run inside the sandbox child (``sandbox.py``), so they
import nothing from Django and may be killed at any moment.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from typing import Any

from apps.knowledge.parsing import DocumentRejectedError, gettext_noop
from apps.knowledge.parsing.guards import ArchiveLimits, check_office_archive

Block = dict[str, Any]


@dataclass(frozen=True)
class ParseLimits:
    max_pages: int = 500
    max_rows: int = 20000
    max_chars: int = 5_000_000
    archive: ArchiveLimits = field(default_factory=ArchiveLimits)


@dataclass
class ParseResult:
    blocks: list[Block]
    pages: int = 0
    rows: int = 0


def parse_file(path: str, kind: str, limits: ParseLimits) -> ParseResult:
    parser = {
        "pdf": _parse_pdf,
        "docx": _parse_docx,
        "xlsx": _parse_xlsx,
        "csv": _parse_csv,
        "txt": _parse_txt,
        "md": _parse_markdown,
        "html": _parse_html,
    }.get(kind)
    if parser is None:
        raise DocumentRejectedError(
            "unsupported_type", gettext_noop("Unsupported document type %(kind)s."), {"kind": kind}
        )
    result = parser(path, limits)
    result.blocks = [block for block in result.blocks if _has_text(block)]
    total = sum(_block_chars(block) for block in result.blocks)
    if total == 0:
        if kind == "pdf":
            raise DocumentRejectedError(
                "empty",
                gettext_noop(
                    "The PDF has no text EVA can read. If it is a scan, export it with text "
                    "recognition (OCR) first."
                ),
            )
        raise DocumentRejectedError("empty", gettext_noop("The document contains no text."))
    if total > limits.max_chars:
        raise DocumentRejectedError(
            "too_much_text",
            gettext_noop(
                "The document holds %(total)s characters of text (limit %(limit)s). "
                "Split it into smaller documents."
            ),
            {"total": total, "limit": limits.max_chars},
        )
    return result


def _has_text(block: Block) -> bool:
    if block["type"] == "table":
        return bool(block["rows"])
    return bool(block.get("text", "").strip())


def _block_chars(block: Block) -> int:
    if block["type"] == "table":
        return sum(len(cell) for row in block["rows"] for cell in row)
    return len(block["text"])


# --- plain text (also used for PDF pages) -------------------------------------------------------

_TERMINAL = (".", "!", "?", ":", ";", ",", "…")


def _clean(text: str) -> str:
    return re.sub(r"[ \t\u00a0]+", " ", text).strip()


def _looks_like_heading(line: str, following: str | None) -> bool:
    """A short line without final punctuation, followed by text, reads as a heading."""
    if not following or len(line) > 80 or len(line) < 2 or line.endswith(_TERMINAL):
        return False
    if line.startswith(("-", "*", "•")) or not line[0].isalnum():
        return False
    return line[0].isupper() or line[0].isdigit() or line.isupper()


def _text_blocks(text: str, **extra: Any) -> list[Block]:
    blocks: list[Block] = []
    for raw_para in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = [_clean(line) for line in raw_para.split("\n") if _clean(line)]
        if not lines:
            continue
        buffer: list[str] = []
        for index, line in enumerate(lines):
            following = lines[index + 1] if index + 1 < len(lines) else None
            if not buffer and _looks_like_heading(line, following):
                blocks.append({"type": "heading", "text": line, "level": 2, **extra})
                continue
            buffer.append(line)
            if line.endswith((".", "!", "?", "…")) and following and following[0].isupper():
                # pypdf rarely keeps blank lines between paragraphs; a sentence end followed
                # by a capitalised line is the next best paragraph boundary.
                blocks.append({"type": "paragraph", "text": " ".join(buffer), **extra})
                buffer = []
        if buffer:
            blocks.append({"type": "paragraph", "text": " ".join(buffer), **extra})
    return blocks


def _read_text(path: str) -> str:
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", errors="replace")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _parse_txt(path: str, limits: ParseLimits) -> ParseResult:
    return ParseResult(blocks=_text_blocks(_read_text(path)))


# --- PDF ----------------------------------------------------------------------------------------


def _parse_pdf(path: str, limits: ParseLimits) -> ParseResult:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            # Many PDFs are "encrypted" only with an empty user password (copy protection);
            # those open fine. Anything else needs a password we do not have.
            try:
                opened = bool(reader.decrypt(""))
            except Exception:
                opened = False
            if not opened:
                raise DocumentRejectedError(
                    "encrypted",
                    gettext_noop(
                        "The PDF is password-protected. Remove the password and upload it again."
                    ),
                )
        pages = len(reader.pages)
    except DocumentRejectedError:
        raise
    except FileNotDecryptedError as exc:
        raise DocumentRejectedError(
            "encrypted", gettext_noop("The PDF is password-protected.")
        ) from exc
    except Exception as exc:  # pypdf raises many types for broken files
        raise DocumentRejectedError(
            "corrupt",
            gettext_noop("The PDF is damaged and cannot be read. Try exporting it again."),
        ) from exc
    if pages > limits.max_pages:
        raise DocumentRejectedError(
            "too_many_pages",
            gettext_noop(
                "The PDF has %(pages)s pages (limit %(limit)s). Split it into smaller files."
            ),
            {"pages": pages, "limit": limits.max_pages},
        )
    blocks: list[Block] = []
    for number, page in enumerate(reader.pages, start=1):
        try:
            text = page.extract_text() or ""
        except (PdfReadError, Exception) as exc:
            raise DocumentRejectedError(
                "corrupt",
                gettext_noop("Page %(page)s of the PDF is damaged and cannot be read."),
                {"page": number},
            ) from exc
        blocks.extend(_text_blocks(text, page=number))
    return ParseResult(blocks=blocks, pages=pages)


# --- DOCX ---------------------------------------------------------------------------------------


def _parse_docx(path: str, limits: ParseLimits) -> ParseResult:
    with open(path, "rb") as handle:
        check_office_archive(handle, limits.archive)
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(path)
    except Exception as exc:
        raise DocumentRejectedError(
            "corrupt", gettext_noop("The Word document is damaged.")
        ) from exc
    blocks: list[Block] = []
    rows_seen = 0
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = _clean(item.text)
            if not text:
                continue
            style = (item.style.name if item.style is not None else "") or ""
            level = _heading_level(style)
            if level:
                blocks.append({"type": "heading", "text": text, "level": level})
            elif style.lower().startswith("list"):
                blocks.append({"type": "paragraph", "text": f"- {text}"})
            else:
                blocks.append({"type": "paragraph", "text": text})
        elif isinstance(item, Table):
            rows = [[_clean(cell.text) for cell in row.cells] for row in item.rows]
            rows = [row for row in rows if any(row)]
            rows_seen += len(rows)
            _check_rows(rows_seen, limits)
            if rows:
                blocks.append(_table_block(rows, first_row=1))
    return ParseResult(blocks=blocks, rows=rows_seen)


def _heading_level(style: str) -> int:
    lowered = style.lower()
    if lowered == "title":
        return 1
    match = re.match(r"(heading|título|titulo)\s*(\d)", lowered)
    return int(match.group(2)) if match else 0


# --- tables: XLSX and CSV ----------------------------------------------------------------------


def _check_rows(rows: int, limits: ParseLimits) -> None:
    if rows > limits.max_rows:
        raise DocumentRejectedError(
            "too_many_rows",
            gettext_noop(
                "The document has more than %(limit)s table rows. "
                "Split it into smaller files or remove unused rows."
            ),
            {"limit": limits.max_rows},
        )


def _table_block(rows: list[list[str]], *, first_row: int, **extra: Any) -> Block:
    """The first row is the header when it is all text; otherwise columns get letters."""
    width = max(len(row) for row in rows)
    rows = [row + [""] * (width - len(row)) for row in rows]
    head = rows[0]
    numeric = sum(1 for cell in head if re.fullmatch(r"[-+]?[\d.,]+", cell or ""))
    if len(rows) > 1 and numeric == 0 and sum(map(bool, head)) >= width / 2:
        header = [cell or f"Column {index + 1}" for index, cell in enumerate(head)]
        body = rows[1:]
        first_row += 1
    else:
        header = [f"Column {index + 1}" for index in range(width)]
        body = rows
    return {"type": "table", "header": header, "rows": body, "first_row": first_row, **extra}


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.10g}"
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return _clean(str(value))


def _parse_xlsx(path: str, limits: ParseLimits) -> ParseResult:
    with open(path, "rb") as handle:
        check_office_archive(handle, limits.archive)
    import openpyxl

    try:
        # read_only streams rows instead of building the whole sheet; data_only reads cached
        # formula results instead of formulas. openpyxl parses through defusedxml when present.
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise DocumentRejectedError(
            "corrupt", gettext_noop("The Excel workbook is damaged.")
        ) from exc
    blocks: list[Block] = []
    total = 0
    try:
        for sheet in workbook.worksheets:
            rows: list[list[str]] = []
            first_row = 0
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                cells = [_cell_text(value) for value in values]
                while cells and not cells[-1]:
                    cells.pop()
                if not cells:
                    continue
                total += 1
                _check_rows(total, limits)
                if not rows:
                    first_row = number
                rows.append(cells)
            if rows:
                blocks.append(
                    {"type": "heading", "text": sheet.title, "level": 1, "sheet": sheet.title}
                )
                blocks.append(_table_block(rows, first_row=first_row, sheet=sheet.title))
    finally:
        workbook.close()
    return ParseResult(blocks=blocks, rows=total)


def _parse_csv(path: str, limits: ParseLimits) -> ParseResult:
    text = _read_text(path)
    sample = text[:65536]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows: list[list[str]] = []
    for cells in csv.reader(io.StringIO(text), dialect):
        cleaned = [_clean(cell) for cell in cells]
        while cleaned and not cleaned[-1]:
            cleaned.pop()
        if cleaned:
            rows.append(cleaned)
            _check_rows(len(rows), limits)
    if not rows:
        return ParseResult(blocks=[])
    return ParseResult(blocks=[_table_block(rows, first_row=1)], rows=len(rows))


# --- Markdown -----------------------------------------------------------------------------------

_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_MD_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


def _md_inline(text: str) -> str:
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"(\*\*|__|`)", "", text)
    return _clean(text)


def _md_row(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|"):
        line = line[:-1]
    return [_md_inline(cell) for cell in line.split("|")]


def _parse_markdown(path: str, limits: ParseLimits) -> ParseResult:
    lines = _read_text(path).replace("\r\n", "\n").split("\n")
    blocks: list[Block] = []
    paragraph: list[str] = []
    rows_seen = 0

    def flush() -> None:
        if paragraph:
            blocks.append({"type": "paragraph", "text": " ".join(paragraph)})
            paragraph.clear()

    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        heading = _MD_HEADING.match(stripped)
        if stripped.startswith("```"):
            flush()
            code: list[str] = []
            index += 1
            while index < len(lines) and not lines[index].strip().startswith("```"):
                code.append(lines[index])
                index += 1
            if any(part.strip() for part in code):
                blocks.append({"type": "paragraph", "text": "\n".join(code).strip()})
        elif heading:
            flush()
            blocks.append(
                {
                    "type": "heading",
                    "text": _md_inline(heading.group(2)),
                    "level": len(heading.group(1)),
                }
            )
        elif "|" in stripped and index + 1 < len(lines) and _MD_TABLE_SEP.match(lines[index + 1]):
            flush()
            rows = [_md_row(stripped)]
            index += 2
            while index < len(lines) and "|" in lines[index]:
                rows.append(_md_row(lines[index]))
                index += 1
            rows_seen += len(rows) - 1
            _check_rows(rows_seen, limits)
            width = len(rows[0])
            blocks.append(
                {
                    "type": "table",
                    "header": rows[0],
                    "rows": [r[:width] + [""] * (width - len(r)) for r in rows[1:]],
                    "first_row": 1,
                }
            )
            continue
        elif not stripped:
            flush()
        elif re.match(r"^([-*+]|\d+\.)\s+", stripped):
            flush()
            blocks.append(
                {
                    "type": "paragraph",
                    "text": "- " + _md_inline(re.sub(r"^([-*+]|\d+\.)\s+", "", stripped)),
                }
            )
        elif re.fullmatch(r"(-{3,}|\*{3,}|_{3,})", stripped):
            flush()
        else:
            paragraph.append(_md_inline(stripped.lstrip("> ")))
        index += 1
    flush()
    return ParseResult(blocks=blocks, rows=rows_seen)


# --- HTML ---------------------------------------------------------------------------------------

_HTML_SKIP = {"script", "style", "noscript", "template", "svg", "head", "iframe", "object", "form"}
_HTML_BLOCKS = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "aside",
    "header",
    "footer",
    "nav",
    "ul",
    "ol",
    "li",
    "pre",
    "blockquote",
    "dl",
    "dt",
    "dd",
    "figure",
    "figcaption",
    "address",
    "body",
    "html",
}


def _parse_html(path: str, limits: ParseLimits) -> ParseResult:
    from bs4 import BeautifulSoup, NavigableString, Tag
    from bs4.element import Comment, Doctype

    # html.parser is pure Python and resolves no external entities.
    soup = BeautifulSoup(_read_text(path), "html.parser")
    blocks: list[Block] = []
    inline: list[str] = []
    rows_seen = 0

    def flush() -> None:
        text = _clean("".join(inline).replace("\n", " "))
        inline.clear()
        if text:
            blocks.append({"type": "paragraph", "text": text})

    def walk(node: Tag) -> None:
        nonlocal rows_seen
        for child in node.children:
            if isinstance(child, (Comment, Doctype)):
                continue
            if isinstance(child, NavigableString):
                inline.append(str(child))
                continue
            if not isinstance(child, Tag) or child.name in _HTML_SKIP:
                continue
            name = child.name
            if re.fullmatch(r"h[1-6]", name):
                flush()
                blocks.append(
                    {"type": "heading", "text": _clean(child.get_text(" ")), "level": int(name[1])}
                )
            elif name == "table":
                flush()
                rows = [
                    [_clean(cell.get_text(" ")) for cell in row.find_all(["th", "td"])]
                    for row in child.find_all("tr")
                ]
                rows = [row for row in rows if any(row)]
                rows_seen += len(rows)
                _check_rows(rows_seen, limits)
                if rows:
                    blocks.append(_table_block(rows, first_row=1))
            elif name == "br":
                inline.append("\n")
            elif name in _HTML_BLOCKS:
                flush()
                if name == "li":
                    inline.append("- ")
                walk(child)
                flush()
            else:
                walk(child)

    walk(soup)
    flush()
    return ParseResult(blocks=blocks, rows=rows_seen)
