"""Hub rules: the compiled model (``model``), the body format and its checks (``parser``,
``parse_conditions``, ``parse_actions``), condition evaluation (``conditions``), where bodies
are kept (``store``) and rule documents in YAML or JSON (``documents``, ``defaults.yaml``)."""
