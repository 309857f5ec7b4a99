"""The fraud classifier: labels in the lake, point-in-time features from Feast, gradient boosting.

``models.fraud.training`` builds the training set and the model; ``models.fraud.job`` is the
daily ``fraud_model`` job (target ``models.fraud.job:train_fraud``).
"""
