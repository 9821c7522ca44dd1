"""The memcg / kmem_cache lifecycle model in every kernel era. Imports only app.domain."""
