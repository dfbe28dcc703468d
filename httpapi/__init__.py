"""HTTP plumbing shared by both services: problem+json errors, body limits, exact JSON for money."""
