"""Real documents built in the tests: PDFs (hand-written PDF syntax, read back by pypdf), DOCX
(python-docx), XLSX (openpyxl), CSV, Markdown, HTML, and hostile files crafted byte by byte."""

from __future__ import annotations

import io
import zipfile


def _pdf_string(text: str) -> bytes:
    raw = text.encode("cp1252")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def make_pdf(pages: list[list[str]]) -> bytes:
    """A PDF with one page per list of lines (Helvetica, WinAnsi: Spanish accents work)."""
    objects: list[bytes] = []
    page_ids = [4 + 2 * index for index in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = b" ".join(b"%d 0 R" % pid for pid in page_ids)
    objects.append(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages)))
    objects.append(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    for index, lines in enumerate(pages):
        content = b"BT /F1 12 Tf 14 TL 72 760 Td "
        for line in lines:
            content += _pdf_string(line) + b" Tj T* "
        content += b"ET"
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (page_ids[index] + 1)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return out.getvalue()


def make_encrypted_pdf(pages: list[list[str]], password: str = "s3cret") -> bytes:  # noqa: S107
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(make_pdf(pages))))
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Catálogo Primavera", level=1)
    document.add_paragraph("Nuestra tienda vende bicicletas urbanas y de montaña.")
    document.add_heading("Garantía", level=2)
    document.add_paragraph("Todas las bicicletas tienen garantía de dos años en el cuadro.")
    document.add_heading("Envíos", level=2)
    document.add_paragraph("Enviamos a toda la península en 48 horas; a Canarias en una semana.")
    table = document.add_table(rows=3, cols=2)
    for row, cells in zip(
        table.rows, [("Zona", "Coste"), ("Península", "5 €"), ("Canarias", "15 €")], strict=True
    ):
        row.cells[0].text, row.cells[1].text = cells
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_xlsx(rows: int = 12) -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Precios"
    sheet.append(["Producto", "Precio", "Stock"])
    for index in range(1, rows + 1):
        sheet.append([f"Modelo {index:02d}", 100 + index * 10.5, index * 3])
    sheet.append(["Bicicleta Eléctrica Turbo", 1899.0, 4])
    other = workbook.create_sheet("Accesorios")
    other.append(["Accesorio", "Precio"])
    other.append(["Casco integral", 59.9])
    other.append(["Candado en U", 24.5])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


CSV = (
    "sku,nombre,precio\nA-1,Sillín gel,19.90\nA-2,Bomba de pie,24.00\nA-3,Luz trasera LED,12.50\n"
).encode()

MARKDOWN = """# Guía de tallas

Elige la talla según tu altura.

## Tallas de cuadro

| Altura | Talla |
| --- | --- |
| 150-165 cm | S |
| 165-180 cm | M |
| 180-195 cm | L |

## Cambios

Puedes cambiar la talla en 30 días si la bici no se ha usado.
""".encode()

HTML = b"""<!doctype html>
<html><head><title>Horario</title><style>body{color:red}</style><script>alert(1)</script></head>
<body>
<h1>Horario de la tienda</h1>
<p>Abrimos de lunes a viernes de 9:00 a 20:00.</p>
<h2>Festivos</h2>
<p>Los festivos nacionales la tienda <b>permanece cerrada</b>.</p>
<ul><li>Navidad</li><li>A\xc3\xb1o Nuevo</li></ul>
</body></html>
"""


def office_zip(members: dict[str, bytes], *, kind: str = "docx") -> bytes:
    """A ZIP shaped like a DOCX/XLSX (the part names detection looks for) with given members."""
    out = io.BytesIO()
    main = "word/document.xml" if kind == "docx" else "xl/workbook.xml"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", b'<?xml version="1.0"?><Types/>')
        if main not in members:
            archive.writestr(main, b'<?xml version="1.0"?><document/>')
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def plain_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("leeme.txt", b"hola")
    return out.getvalue()


def zip_bomb_docx() -> bytes:
    """64 MB of zeros in one member: compresses ~1000:1."""
    return office_zip({"word/media/blob.bin": b"\0" * (64 * 1024 * 1024)})


def xml_bomb_docx() -> bytes:
    lol = (
        b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        b"<document>&lol3;</document>"
    )
    return office_zip({"word/document.xml": lol})


PNG = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + b"\0" * 64
