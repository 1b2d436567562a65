"""The Django side of the hub's interop tests: a real Django project's
auth_user and djangorestframework-simplejwt, on the database the hub uses.

    interop.py DATABASE_URL SECRET_KEY setup            migrate; create alice and staff sam
    interop.py DATABASE_URL SECRET_KEY mint USERNAME    print an access token
    interop.py DATABASE_URL SECRET_KEY verify TOKEN     print the user id of an access token
    interop.py DATABASE_URL SECRET_KEY check USERNAME   read a password on stdin; print true or false
    interop.py DATABASE_URL SECRET_KEY http             read a JSON list of requests on stdin, answer
                                                        each with simplejwt's views behind Django's
                                                        CommonMiddleware and django-cors-headers;
                                                        print a JSON list of {status, headers, body}

The project behind `http` is what `startproject` plus simplejwt's and
django-cors-headers' instructions give: DEBUG off, APPEND_SLASH on, the token
views at /api/token/ and /api/token/refresh/, CORS_ALLOWED_ORIGINS as below.
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


CORS_ALLOWED_ORIGINS = ["https://app.example"]
# The answer headers the hub must match.
COMPARED_HEADERS = ["allow", "location", "access-control-allow-origin", "content-type"]


def answer(requests):
    from django.test import Client

    client = Client(raise_request_exception=False)
    answers = []
    for r in requests:
        body = r.get("body", "").encode()
        kwargs = {"content_type": r["content_type"]} if "content_type" in r else {}
        resp = client.generic(r["method"], r["path"], body, headers=r.get("headers", {}), **kwargs)
        try:
            parsed = json.loads(resp.content) if resp.content else None
        except ValueError:
            parsed = None
        headers = {h: resp[h] for h in COMPARED_HEADERS if resp.has_header(h)}
        answers.append({"status": resp.status_code, "headers": headers, "body": parsed})
    return answers


def main():
    url, key, command, *args = sys.argv[1:]
    settings.configure(
        SECRET_KEY=key,
        DATABASES={"default": database(url)},
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "rest_framework_simplejwt",
            "corsheaders",
        ],
        MIDDLEWARE=["corsheaders.middleware.CorsMiddleware", "django.middleware.common.CommonMiddleware"],
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["testserver"],
        CORS_ALLOWED_ORIGINS=CORS_ALLOWED_ORIGINS,
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
    elif command == "http":
        print(json.dumps(answer(json.load(sys.stdin))))
    else:
        sys.exit(f"unknown command {command}")


def urlpatterns_after_setup():
    from django.urls import path
    from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

    return [
        path("api/token/", TokenObtainPairView.as_view()),
        path("api/token/refresh/", TokenRefreshView.as_view()),
    ]


# Django reads this module's urlpatterns when a request comes in, after setup.
def __getattr__(name):
    if name == "urlpatterns":
        return urlpatterns_after_setup()
    raise AttributeError(name)


if __name__ == "__main__":
    main()
