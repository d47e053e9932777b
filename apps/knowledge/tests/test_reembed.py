"""Changing the embedding model: documents re-embedded by the command, search keeps answering
from the old chunks meanwhile, vectors of the two models never mixed."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import tenant_context

from apps.ai.embeddings import embedding_model_active
from apps.knowledge.models import Chunk, Document
from apps.knowledge.retrieval import search_chunks
from apps.knowledge.services import document_ingest
from apps.knowledge.tests.conftest import logged_in, upload
from apps.knowledge.tests.faq import faq_markdown

pytestmark = pytest.mark.django_db

OLD = "vendor/retired-model@512"


def test_reembed_command_moves_documents_to_the_active_model(world, media):
    body = upload(logged_in(world.owner_a), "faq.md", faq_markdown()).json()
    active = embedding_model_active()
    with tenant_context(world.tenant_a):
        document_ingest(document_id=body["id"])
        # As if these vectors had been made by a model that is no longer active.
        Chunk.objects.filter(document_id=body["id"]).update(embedding_model=OLD)
        Document.objects.filter(pk=body["id"]).update(embedding_model=OLD)
        texts_before = list(Chunk.objects.order_by("ordinal").values_list("text", flat=True))

        # Meanwhile search still answers from the old chunks (by full text: the query vector
        # comes from the active model and is never compared with the old vectors).
        hits = search_chunks(query="¿Aceptáis pago con PayPal o Bizum?", limit=3)
        assert hits and "PayPal" in hits[0].text
        assert all(hit.metadata["similarity"] is None for hit in hits)

    out = StringIO()
    call_command("knowledge_reembed", "alpha", stdout=out)
    output = out.getvalue()
    assert f"Active embedding model: {active.key}" in output
    assert "[alpha] 1/1 faq: 20 chunks re-embedded" in output
    assert "Done: 1 document(s) re-embedded." in output

    with tenant_context(world.tenant_a):
        document = Document.objects.get(pk=body["id"])
        assert document.embedding_model == active.key and document.status == "ready"
        chunks = Chunk.objects.filter(document=document).order_by("ordinal")
        assert {chunk.embedding_model for chunk in chunks} == {active.key}
        assert [chunk.text for chunk in chunks] == texts_before
        hits = search_chunks(query="¿Aceptáis pago con PayPal o Bizum?", limit=3)
        assert "PayPal" in hits[0].text and hits[0].metadata["similarity"] > 0.2

    # Running it again changes nothing; tenant B had nothing to do.
    out = StringIO()
    call_command("knowledge_reembed", "--all", stdout=out)
    assert "[alpha] up to date" in out.getvalue() and "[beta] up to date" in out.getvalue()
    with tenant_context(world.tenant_b):
        assert not Chunk.objects.exists()


def test_reembed_command_needs_a_target():
    with pytest.raises(CommandError, match="Name tenant slugs or pass --all"):
        call_command("knowledge_reembed")
    with pytest.raises(CommandError, match="Unknown tenant"):
        call_command("knowledge_reembed", "nope")
