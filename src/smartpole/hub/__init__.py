"""The intelligent hub: rules that watch every committed reading, alarms, and their actions.

Modules: ``alarms`` (the alarm store), ``rules`` (rule model and validation), ``conditions``
(evaluation of one condition), ``engine`` (the pipeline listener and its state), ``actions``
(commands, webhooks, work orders), ``webhooks`` (signed deliveries with retries).
"""
