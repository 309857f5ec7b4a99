"""Fraud scoring (issue 10): ``POST /v1/fraud/score`` and the checkout's fraud screen."""
