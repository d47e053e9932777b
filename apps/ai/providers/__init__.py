"""Provider adapters: each turns one call into the vendor's wire format and back.

Only this package imports vendor SDKs; the rest of EVA goes through apps.ai.chat and
apps.ai.embeddings.
"""
