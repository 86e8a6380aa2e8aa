"""All terminal output goes through these two consoles.

Much of what they print is the user's own text: file names, run names, string
choices, source lines. So neither reads markup (``[bold]``, ``[/x]``) nor emoji
codes (``:x:``) in what it prints, and ``[`` or ``:`` never change or break the
output. Styling is explicit instead: ``rich.text.Text`` with a ``style``, or the
``style`` arguments of tables and columns.
"""

from rich.console import Console

out = Console(markup=False, emoji=False, highlight=False, soft_wrap=True)
err = Console(stderr=True, markup=False, emoji=False, highlight=False, soft_wrap=True)
