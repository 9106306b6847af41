"""Flags for Debian's headless Chromium on a machine with a closed network, used by the
review page's browser test and screenshot: no sandbox (root), no GPU, no background
connections, updates, sync or first-run pages."""

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
