"""Schema governance tools: event schema compatibility and OpenAPI breaking-change checks."""
