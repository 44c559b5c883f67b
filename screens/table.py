"""A virtual table on Textual's line API: only the lines on screen are drawn.

Textual's DataTable builds every row up front (about 13 s for 100,000
builds); this renders `render_line(y)` from the row under that line, so the
first paint and every filter cost what a screenful costs, whatever the queue's
size. The first line is a sticky header; the cursor is a row index and the
table scrolls to keep it in view.
"""
from __future__ import annotations

from typing import Generic, Sequence, TypeVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

T = TypeVar("T")
HEADER = Style(bold=True, underline=True)
CURSOR = Style(reverse=True)


def cell(text: str, width: int) -> str:
    """`text` cut or padded to exactly `width` cells (an ellipsis marks a cut)."""
    if width <= 0:
        return ""
    if len(text) > width:
        return text[: width - 1] + "…"
    return text.ljust(width)


class VirtualTable(ScrollView, Generic[T], can_focus=True):
    """Rows of `T`; subclasses draw the header and one row per line."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "up", show=False),
        Binding("down,j", "cursor(1)", "down", show=False),
        Binding("pageup,ctrl+b", "page(-1)", "page up", show=False),
        Binding("pagedown,ctrl+f,space", "page(1)", "page down", show=False),
        Binding("home,g", "jump(0)", "first", show=False),
        Binding("end,G", "jump(-1)", "last", show=False),
        Binding("enter", "choose", "open", show=False),
    ]

    class Chosen(Message):
        """Enter on a row."""

        def __init__(self, table: "VirtualTable", row: object) -> None:
            super().__init__()
            self.table = table
            self.row = row

    class Moved(Message):
        """The cursor moved to another row (or the rows changed under it)."""

        def __init__(self, table: "VirtualTable", row: object | None) -> None:
            super().__init__()
            self.table = table
            self.row = row

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.rows: Sequence[T] = ()
        self.cursor = 0

    # ------------------------------------------------------------ content

    def set_rows(self, rows: Sequence[T], cursor: int | None = None) -> None:
        """Show `rows` with the cursor at `cursor` (kept in range)."""
        self.rows = rows
        self.cursor = max(0, min(cursor if cursor is not None else self.cursor, len(rows) - 1))
        self.virtual_size = Size(self.size.width, len(rows) + 1)
        self._follow()
        self.refresh()
        self.post_message(self.Moved(self, self.current))

    @property
    def current(self) -> T | None:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    def header(self, width: int) -> list[Segment]:
        raise NotImplementedError

    def line(self, row: T, width: int) -> list[Segment]:
        raise NotImplementedError

    def empty(self) -> str:
        return "nothing to show"

    # ------------------------------------------------------------ drawing

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if y == 0:
            return Strip(self.header(width)).adjust_cell_length(width, HEADER).apply_style(HEADER)
        index = int(self.scroll_offset.y) + y - 1
        if not self.rows and y == 1:
            return Strip([Segment(cell(self.empty(), width), Style(dim=True))], width)
        if index >= len(self.rows):
            return Strip.blank(width)
        strip = Strip(self.line(self.rows[index], width)).adjust_cell_length(width)
        if index == self.cursor:
            strip = strip.apply_style(CURSOR if self.has_focus else Style(bold=True, underline=True))
        return strip

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.rows) + 1)
        self._follow()

    def on_click(self, event: events.Click) -> None:
        """A click selects the row under it; a double click opens it."""
        index = int(self.scroll_offset.y) + event.y - 1
        if event.y >= 1 and 0 <= index < len(self.rows):
            self.move_to(index)
            if event.chain >= 2:
                self.action_choose()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # ------------------------------------------------------------ moving

    def _page_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _follow(self) -> None:
        """Scroll so that the cursor's row is on screen."""
        top = int(self.scroll_offset.y)
        page = self._page_rows()
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + page:
            self.scroll_to(y=self.cursor - page + 1, animate=False, immediate=True)

    def move_to(self, index: int) -> None:
        if not self.rows:
            return
        index = max(0, min(index, len(self.rows) - 1))
        if index != self.cursor:
            self.cursor = index
            self._follow()
            self.refresh()
            self.post_message(self.Moved(self, self.current))

    def action_cursor(self, step: int) -> None:
        self.move_to(self.cursor + step)

    def action_page(self, step: int) -> None:
        self.move_to(self.cursor + step * self._page_rows())

    def action_jump(self, where: int) -> None:
        self.move_to(len(self.rows) - 1 if where < 0 else where)

    def action_choose(self) -> None:
        if self.current is not None:
            self.post_message(self.Chosen(self, self.current))
