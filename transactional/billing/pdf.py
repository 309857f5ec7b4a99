"""Invoices and credit notes rendered as PDF with fpdf2 (a PDF library; no hand-made bytes).

The font is DejaVu Sans from matplotlib's bundled data (Unicode names and addresses, no
download, no system font); without it, fpdf2's core Helvetica with non-Latin-1 characters
replaced. Amounts are printed as plain decimals with the currency code (``1234.56 EUR``):
no symbol a font may lack, no separator a reader may misread.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from transactional.billing.model import Invoice, Party
from transactional.billing.tax import format_rate

_TITLES = {"invoice": "Invoice", "credit_note": "Credit note"}
# Minor units per major unit of the currencies Souk prices in (all have two decimals).
_DECIMALS = 2


@lru_cache(maxsize=1)
def _dejavu() -> tuple[Path, Path] | None:
    spec = importlib.util.find_spec("matplotlib")
    for root in (spec.submodule_search_locations or []) if spec else []:
        fonts = Path(root) / "mpl-data" / "fonts" / "ttf"
        regular, bold = fonts / "DejaVuSans.ttf", fonts / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    return None


def amount(minor: int, currency: str) -> str:
    """``123456`` EUR as ``1234.56 EUR`` (a minus sign for negatives)."""
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 10**_DECIMALS)
    return f"{sign}{whole}.{cents:0{_DECIMALS}d} {currency}"


def _rate(rate: Decimal) -> str:
    return f"{format_rate(rate)}%"


class _Document:
    """One PDF under construction, with the font chosen once."""

    def __init__(self, title: str) -> None:
        self.pdf = FPDF(format="A4")
        self.pdf.set_auto_page_break(auto=True, margin=15)
        self.pdf.set_title(title)
        self.pdf.set_author("Souk")
        fonts = _dejavu()
        if fonts is not None:
            self.pdf.add_font("DejaVu", "", str(fonts[0]))
            self.pdf.add_font("DejaVu", "B", str(fonts[1]))
            self.family, self.unicode = "DejaVu", True
        else:
            self.family, self.unicode = "Helvetica", False

    def text(self, value: str) -> str:
        """``value`` as the font can draw it."""
        return value if self.unicode else value.encode("latin-1", "replace").decode("latin-1")

    def line(self, value: str, *, size: float = 10, bold: bool = False, h: float = 5.5) -> None:
        """One line of text across the page."""
        self.pdf.set_font(self.family, "B" if bold else "", size)
        self.pdf.cell(0, h, self.text(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def table(
        self, rows: Sequence[Sequence[str]], widths: Sequence[float], align: Sequence[str]
    ) -> None:
        """A table whose first row is the heading."""
        self.pdf.set_font(self.family, "", 9)
        with self.pdf.table(
            col_widths=tuple(widths), text_align=tuple(align), line_height=6
        ) as table:
            for values in rows:
                row = table.row()
                for value in values:
                    row.cell(self.text(value))


def _party(doc: _Document, label: str, party: Party, *, issuer: bool) -> None:
    doc.line(label, bold=True)
    doc.line(party.name)
    for address_line in party.address:
        doc.line(address_line)
    if party.country:
        doc.line(f"Country: {party.country}")
    if party.tax_id or issuer:  # the issuer's is expected: say so when it is missing
        doc.line(f"Tax ID: {party.tax_id or 'not on file'}")


def render_one(doc: _Document, invoice: Invoice) -> None:
    """Add ``invoice`` to the document, starting on a new page."""
    pdf, currency = doc.pdf, invoice.currency
    pdf.add_page()
    doc.line(f"{_TITLES[invoice.kind]} {invoice.number}", size=16, bold=True, h=9)
    doc.line(f"Issued: {invoice.issued_at:%Y-%m-%d}")
    doc.line(f"Date of supply: {invoice.supplied_at:%Y-%m-%d}")
    doc.line(f"Order: {invoice.order_id}")
    if invoice.corrects:
        doc.line(f"Corrects invoice: {invoice.corrects}")
    pdf.ln(3)
    _party(doc, "Seller", invoice.seller, issuer=True)
    pdf.ln(3)
    _party(doc, "Buyer", invoice.buyer, issuer=False)
    pdf.ln(4)
    rows = [["Item", "Qty", "Unit price", "Net", "Tax rate", "Tax", "Gross"]]
    rows += [
        [
            f"{line.description} ({line.sku})",
            str(line.quantity),
            amount(line.unit_price_minor, currency),
            amount(line.net_minor, currency),
            _rate(line.tax_rate),
            amount(line.tax_minor, currency),
            amount(line.gross_minor, currency),
        ]
        for line in invoice.lines
    ]
    doc.table(rows, (52, 10, 24, 24, 16, 22, 26), ("LEFT", *("RIGHT",) * 6))
    pdf.ln(4)
    doc.line("Totals per tax rate", bold=True)
    per_rate = [["Tax rate", "Net", "Tax", "Gross"]]
    per_rate += [
        [
            _rate(total.rate),
            amount(total.net_minor, currency),
            amount(total.tax_minor, currency),
            amount(total.gross_minor, currency),
        ]
        for total in invoice.rate_totals()
    ]
    doc.table(per_rate, (25, 35, 35, 35), ("LEFT", "RIGHT", "RIGHT", "RIGHT"))
    pdf.ln(4)
    doc.line(f"Total net: {amount(invoice.net_minor, currency)}", size=11, bold=True)
    doc.line(f"Total tax: {amount(invoice.tax_minor, currency)}", size=11, bold=True)
    doc.line(f"Total gross: {amount(invoice.gross_minor, currency)}", size=11, bold=True)
    pdf.ln(2)
    doc.line(
        "Prices include tax." if invoice.prices_include_tax else "Tax added to the prices.",
        size=9,
    )


def render_pdf(invoices: Sequence[Invoice]) -> bytes:
    """One PDF holding ``invoices`` (at least one), one or more pages each."""
    if not invoices:
        raise ValueError("nothing to render")
    first = invoices[0]
    doc = _Document(f"{_TITLES[first.kind]} {first.number}")
    # A fixed creation date: the same document renders to the same bytes.
    doc.pdf.set_creation_date(first.issued_at)
    for invoice in invoices:
        render_one(doc, invoice)
    return bytes(doc.pdf.output())
