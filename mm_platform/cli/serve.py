"""``mmp serve``: the lake browser on 127.0.0.1 (registered on the ``mmp`` group at the end of ``cli.py``)."""

from __future__ import annotations

import ipaddress
import secrets

import click

from mm_platform.cli.common import handle_errors, open_lake
from mm_platform.errors import ConfigError

__all__ = ["serve_command"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=8750, show_default=True)
@click.option(
    "--token",
    "token",
    default=None,
    envvar="MM_BROWSER_TOKEN",
    help="Require this token (env MM_BROWSER_TOKEN); 'auto' makes one up and prints it. Needed off loopback.",
)
@click.option("--warm/--no-warm", default=True, show_default=True, help="Load models and indexes before serving.")
@click.pass_context
@handle_errors
def serve_command(ctx: click.Context, host: str, port: int, token: str | None, warm: bool) -> None:
    """A read-only web app and JSON API over the lake: search, items with lineage, snapshots, diffs,
    quarantine. Pages at http://HOST:PORT/, the API documented at /docs."""
    import uvicorn

    from mm_platform.serve.app import create_app
    from mm_platform.serve.service import LakeBrowser

    if token == "auto":
        token = secrets.token_urlsafe(24)
    if not _is_loopback(host) and not token:
        raise ConfigError(
            f"refusing to serve the lake on {host} without a token",
            hint="add --token auto (or --token SECRET); other machines then need ?token=… or a Bearer header",
        )

    browser = LakeBrowser(open_lake(ctx))
    if warm:
        browser.warm()
    app = create_app(browser, token=token)
    shown = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    click.echo(f"serving {browser.lake.location.root} at {shown} (API: /docs); Ctrl-C stops", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
