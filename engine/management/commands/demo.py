from django.conf import settings
from django.core.management.base import BaseCommand

from engine.demo import create_demo


class Command(BaseCommand):
    help = "Create the demo workspaces, users, workflow and leads (changes nothing that exists)."

    def handle(self, *args, **options):
        password = settings.DIALNEXA_DEMO_PASSWORD
        result = create_demo(password)
        for item in result.created:
            self.stdout.write(f"created {item}")
        if not result.created:
            self.stdout.write("demo data already present; nothing changed")
        self.stdout.write(f"\nDemo logins (password: {password}, from DIALNEXA_DEMO_PASSWORD):")
        for username, token in result.tokens.items():
            self.stdout.write(f"  {username:<9} API token {token}")
