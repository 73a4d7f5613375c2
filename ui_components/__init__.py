"""The web app's pieces: one module per panel (``build_*()`` returns a dataclass of component
handles), ``handlers`` (a package of plain functions: UI values -> recipe -> core), ``events`` (the
page's event functions), ``api`` (the named gradio_client endpoints) and ``session`` (per-session
folders)."""
