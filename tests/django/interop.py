"""The Django side of the hub's interop tests: a real Django project's
auth_user and djangorestframework-simplejwt, on the database the hub uses.

    interop.py DATABASE_URL SECRET_KEY setup            migrate; create alice and staff sam
    interop.py DATABASE_URL SECRET_KEY mint USERNAME    print an access token
    interop.py DATABASE_URL SECRET_KEY verify TOKEN     print the user id of an access token
    interop.py DATABASE_URL SECRET_KEY check USERNAME   read a password on stdin; print true or false
"""

import json
import sys
from urllib.parse import urlparse

import django
from django.conf import settings


def database(url):
    if url.startswith("sqlite://"):
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": url[len("sqlite://"):]}
    parts = urlparse(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": parts.username or "",
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


def main():
    url, key, command, *args = sys.argv[1:]
    settings.configure(
        SECRET_KEY=key,
        DATABASES={"default": database(url)},
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework_simplejwt"],
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from rest_framework_simplejwt.tokens import AccessToken

    if command == "setup":
        call_command("migrate", verbosity=0)
        alice = User.objects.create_user("alice", password="django pass")
        sam = User.objects.create_user("sam", password="staff pass", is_staff=True)
        print(json.dumps({"alice": alice.id, "sam": sam.id}))
    elif command == "mint":
        print(str(AccessToken.for_user(User.objects.get(username=args[0]))))
    elif command == "verify":
        print(AccessToken(args[0])["user_id"])
    elif command == "check":
        user = User.objects.get(username=args[0])
        print("true" if user.check_password(sys.stdin.read().rstrip("\n")) else "false")
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
