"""Hub rules: the compiled model (``model``), the body format and its checks (``parser``,
``parse_conditions``, ``parse_actions``, collecting into ``problems``), condition evaluation
(``conditions``), where bodies are kept (``store``, ``tables``) and rule documents in YAML or
JSON (``documents``, ``defaults.yaml``)."""
