"""Check the configured model providers without printing any secret.

For each provider: whether a key is configured (and where from: platform env or the tenant's
own), the endpoint host, whether it answers (a free metadata call, no tokens spent), then the
route each chat call resolves to and the active embedding model.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context

from apps.ai.embeddings import embedding_model_active
from apps.ai.routing import credentials_for, default_model, parse_route, resolve_route


def _host(url: str | None, default: str) -> str:
    # Only scheme://host:port: a URL may carry credentials (user:pass@) or tokens in its query.
    if not url:
        return default
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


class Command(BaseCommand):
    help = "Check model providers (reachability, routes, embedding model) without printing keys."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--schema", help="Check as this tenant schema (its own keys count).")
        parser.add_argument("--route", help="Resolve this route instead of AI_CHAT_ROUTE.")
        parser.add_argument("--offline", action="store_true", help="Do not contact providers.")
        parser.add_argument("--json", action="store_true", help="Print one JSON document.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["route"]:
            try:
                parse_route(options["route"])
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        with schema_context(options["schema"] or "public"):
            report = self._report(options)
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
        else:
            self._print(report)
        failing = [
            p["provider"]
            for p in report["providers"]
            if not p["status"].startswith("ok") and p["status"] not in ("not configured", "skipped")
        ]
        if failing:
            raise CommandError(f"not reachable: {', '.join(failing)}")

    def _report(self, options: dict[str, Any]) -> dict[str, Any]:
        timeout = min(settings.AI_TIMEOUT_SECONDS, 10.0)
        providers = []
        for name, default_host in (
            ("gemini", "https://generativelanguage.googleapis.com"),
            ("openai", "https://api.openai.com"),
        ):
            credentials = credentials_for(name)
            model = default_model(name)
            base = settings.GEMINI_BASE_URL if name == "gemini" else credentials.base_url
            entry: dict[str, Any] = {
                "provider": name,
                "key": "not set" if credentials.source == "none" else f"set ({credentials.source})",
                "endpoint": _host(base, default_host),
                "chat_model": model,
            }
            if credentials.source == "none":
                entry["status"] = "not configured"
            elif options["offline"]:
                entry["status"] = "skipped"
            elif name == "gemini":
                from apps.ai.providers.gemini_chat import reachable

                entry["status"] = reachable(credentials, model, timeout)
            else:
                from apps.ai.providers.openai_chat import reachable as openai_reachable

                entry["status"] = openai_reachable(credentials, model, timeout)
            providers.append(entry)
        providers.append(
            {
                "provider": "local",
                "key": "not needed",
                "endpoint": "in process",
                "chat_model": "local-extractive",
                "status": "ok",
            }
        )
        embedding = embedding_model_active()
        return {
            "schema": options["schema"] or "public",
            "providers": providers,
            "route": [str(entry) for entry, _ in resolve_route(options["route"])],
            "embedding": {
                "model": embedding.key,
                "dimensions": embedding.dimensions,
                "storage": embedding.storage,
            },
        }

    def _print(self, report: dict[str, Any]) -> None:
        self.stdout.write(f"schema: {report['schema']}")
        for p in report["providers"]:
            line = f"{p['provider']:<7} key {p['key']:<14} {p['endpoint']:<45} {p['chat_model']}"
            style = self.style.SUCCESS if p["status"].startswith("ok") else self.style.WARNING
            self.stdout.write(f"{line}  {style(p['status'])}")
        self.stdout.write("chat route: " + " -> ".join(report["route"]))
        e = report["embedding"]
        self.stdout.write(f"embeddings: {e['model']} (store as {e['storage']})")
