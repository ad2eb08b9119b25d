"""The OpenAI Responses API as a translator over ``ChatService`` (items ↔ messages)."""
