"""The intelligent hub: rules that watch every committed reading, alarms, and their actions.

Packages by concern: ``rules`` (the rule model, its parser, condition evaluation, the store of
rule bodies), ``alarms`` (the alarm store, pole outages, the live stream), ``workorders``
(lifecycle, the store of orders and teams), ``webhooks`` (signed deliveries with retries),
``analytics`` (anomaly detection, forecasts). Beside them: ``engine`` (the pipeline listener,
rule state, the timer; it builds the alarms, work orders and webhooks it acts through),
``actions`` (commands, webhooks, work orders for a rule's transitions), ``directory`` (the
registry as the rules see it), ``aqi`` (HJ 633-2012).
"""
