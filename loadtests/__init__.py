"""What measures speed: Locust load tests, the side-by-side benchmark, the stage profile, the explanation's
cost, the baseline handler and the spelling benchmark. Built on the harness; never imports the drills."""
