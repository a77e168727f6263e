"""Settings of single ``kuwa-cli`` commands: ``stress`` and ``up``."""

from __future__ import annotations

from dataclasses import dataclass, field

from kuwa.settings.values import doc


@dataclass(frozen=True)
class CommandSettings:
    """Where `kuwa-cli stress` may send load; what `kuwa-cli up` starts."""

    __slots__ = ()  # Settings holds the fields in slots of its own
    # --- stress measure ------------------------------------------------------------------
    stress_targets: tuple[str, ...] = field(
        default=(),
        metadata=doc(
            "Hosts (names, addresses or URLs, comma-separated) that `kuwa-cli stress` may "
            "send load to besides this machine's loopback addresses and public_url's host."
        ),
    )
    # --- kuwa-cli up --------------------------------------------------------------------
    demo_models: tuple[str, ...] = field(
        default=("echo", "reverse", "upper"),
        metadata=doc(
            "Access codes of the demo debug executors `kuwa-cli up` starts (comma-separated; "
            "empty for none). Each name that is a debug transform uses it."
        ),
    )
    admin_email: str = field(
        default="admin@localhost", metadata=doc("Email of the admin `kuwa-cli up` creates.")
    )
    admin_password: str | None = field(
        default=None,
        metadata=doc("Password of that admin (default: a random one, printed once)."),
    )
