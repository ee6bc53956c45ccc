"""The web interface of `topics serve`: pages over the same library calls as the CLI (web/app.py),
its security (web/security.py), thumbnails (web/thumbs.py) and the thread it runs in (web/server.py).

Layered between the command line and the model plane: `cli -> web -> topics -> indexer`.
"""
