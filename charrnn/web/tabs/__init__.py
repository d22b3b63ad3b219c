"""The page's tabs, one module each; each module's `build(page)` lays out its tab and wires its events."""
