"""Per-area WeChat API modules: paths, payloads and typed results, over one transport."""
