"""Load tests (Locust), the side-by-side benchmark and the stage profile of the served classifier."""
