"""Writes of the training side, one module per concern: datasets, lease (the training lock), runs, finetune,
comparison, rescore, schedule. Admin actions, Celery tasks and management commands are thin and call these; what
must hold (one training at a time, a failed run never touches Production) is enforced here and in the database.
Promotion and rollback are the registry's (registry.services); reads are in training.selectors."""
