"""填报: Excel templates and online forms for data no campus system holds, the department task
table (任务能跟踪) and the quality-incident register (质量事故).

Templates are generated from the rulebook (``templates``); filled copies come back through the
upload page, the drop folder (``drop``) or an import, and are read with every problem located in
Chinese (``sheets``, ``values``, ``tasks``, ``incidents``). ``intake.Intake`` audits what it accepts
and delivers the values as Observations through the same ``Delivery`` as every connector (Kafka
for the worker, the embedded pipeline otherwise). ``due`` tracks who owes what by when.
"""

from zhengai.forms.intake import Intake, Outcome, check_due
from zhengai.forms.spec import FormsConfig, load_forms

__all__ = ["Intake", "Outcome", "check_due", "FormsConfig", "load_forms"]
