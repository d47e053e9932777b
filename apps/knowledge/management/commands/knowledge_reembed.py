"""Re-embed documents whose vectors come from another model than the active one."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import tenant_context

from apps.ai.embeddings import embedding_model_active
from apps.knowledge.models import Document
from apps.knowledge.services import document_reembed, documents_reembed_enqueue
from apps.tenants.models import Tenant
from apps.tenants.selectors import tenant_list


class Command(BaseCommand):
    help = (
        "Re-embed every ready document not embedded with the active embedding model "
        "(after changing AI_EMBED_PROVIDER or the vendor model). Search keeps answering from "
        "each document's old chunks until its new ones are written. Runs here with progress "
        "output, or with --queue on the `embedding` Celery queue."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slugs", nargs="*", help="Tenant slugs (default: --all is required).")
        parser.add_argument("--all", action="store_true", help="Every tenant.")
        parser.add_argument(
            "--queue", action="store_true", help="Enqueue on the embedding queue instead."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        slugs: list[str] = options["slugs"]
        if not slugs and not options["all"]:
            raise CommandError("Name tenant slugs or pass --all.")
        tenants = list(tenant_list().exclude(schema_name="public"))
        if slugs:
            known = {tenant.slug: tenant for tenant in tenants}
            missing = [slug for slug in slugs if slug not in known]
            if missing:
                raise CommandError(f"Unknown tenant(s): {', '.join(missing)}")
            tenants = [known[slug] for slug in slugs]
        model = embedding_model_active()
        self.stdout.write(f"Active embedding model: {model.key}")
        total = 0
        for tenant in tenants:
            total += self._tenant(tenant, model.key, queue=options["queue"])
        verb = "queued" if options["queue"] else "re-embedded"
        self.stdout.write(self.style.SUCCESS(f"Done: {total} document(s) {verb}."))

    def _tenant(self, tenant: Tenant, key: str, *, queue: bool) -> int:
        with tenant_context(tenant):
            if queue:
                count = documents_reembed_enqueue()
                self.stdout.write(f"[{tenant.slug}] {count} document(s) queued")
                return count
            stale = list(
                Document.objects.filter(status=Document.Status.READY)
                .exclude(embedding_model=key)
                .order_by("pk")
            )
            if not stale:
                self.stdout.write(f"[{tenant.slug}] up to date")
                return 0
            done = 0
            for index, document in enumerate(stale, start=1):
                changed = document_reembed(document_id=document.pk)
                done += int(changed)
                state = "re-embedded" if changed else "skipped (changed meanwhile)"
                self.stdout.write(
                    f"[{tenant.slug}] {index}/{len(stale)} {document.title}: "
                    f"{document.chunk_count} chunks {state}"
                )
            return done
