"""The synthetic web: a deterministic page, redirect or error for any (seed, host, path?query)."""

from __future__ import annotations

import functools
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from aiohttp import web

from linkmeter.emulator import answers
from linkmeter.emulator.world import World

# The provider this part serves (the page fetcher): the knobs' name for every request to the synthetic web.
PROVIDER = "page"
SERVES = (PROVIDER,)

SHORT_HOSTS = frozenset({"lnk.example", "s.example.net"})
HOPS_HOST = "hops.example"  # /n/<k> redirects k times, then serves a page
LOOP_HOST = "loop.example"  # every path redirects, forever
HUGE_HOST = "huge.example"  # an ~8 MB page
GZIP_BOMB_HOST = "gzip-bomb.example"  # a small gzip body that inflates to 32 MB
XSS_HOST = "xss.example.com"  # script payloads in title, description, lang, canonical and links
LATIN1_HOST = "latin1.example"  # latin-1 bytes, the charset only in the Content-Type header
CP1252_HOST = "cp1252.example"  # windows-1252 bytes, the charset only in a <meta> tag
BAD_UTF8_HOST = "badutf8.example"  # declared utf-8, contains latin-1 bytes
NO_HEAD_HOST = "nohead.example"  # no <head>: no title, no meta, no canonical
MAX_HOPS = 100
HUGE_BYTES = 8 * 1024 * 1024
GZIP_BOMB_BYTES = 32 * 1024 * 1024
TRACKING_PARAMS = frozenset({"fbclid", "gclid", "mc_cid", "mc_eid", "ref_src", "igshid"})
CODE_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
NOFOLLOW_RELS = (' rel="nofollow"', ' rel="nofollow noopener"', ' rel="ugc nofollow"',
                 ' rel="sponsored nofollow"')
INDEX_FILES = ("index.html", "index.htm", "index.php")

SAMPLE_URLS: list[str] = [
    "https://news.example.org/a/1",
    "https://news.example.org/2024/05/city-council-approves-new-budget",
    "https://techblog.example/blog/async-python-in-practice",
    "http://dailyplanet.example/news/storm-hits-coast?id=4821",
    "https://lnk.example/x7Kq2",
    "https://shop.example.com/spring/index.html?utm_source=newsletter&utm_medium=email&utm_campaign=spring",
    "https://recipes.example/2023/11/slow-cooker-chili",
    "https://hops.example/n/3",
    "https://latin1.example/a/7",
    "https://s.example.net/r/abc123",
    # The registered domain (not just a label) must look spammy for the world's blocklists to list it.
    "https://spam-deals.example/offer",
    "https://xss.example.com/a/1",
]

_WORD_TEXT = (
    "the of and to in is for on that with as by at from this are be was it an or have has not new more "
    "city council budget school water energy market price report study data model system network user "
    "people company government state policy health research science climate weather storm coast river "
    "road train travel food recipe kitchen garden house family child music film book art game team "
    "season league player coach match score record history museum library software python code async "
    "server client release version feature security privacy update design product customer service "
    "support community project open source license developer tool test build deploy cloud database "
    "query index cache memory speed performance quality review analysis result method sample figure "
    "table section chapter article story source editor reader comment opinion week month year today "
    "morning evening local national world global economy trade bank loan rate tax job work office"
)
_SPAM_TEXT = (
    "free bonus winner prize cheap deal offer discount limited exclusive click now guaranteed cash "
    "crypto casino jackpot miracle instant approved lowest price buy best order today hurry act fast"
)
WORDS = tuple(_WORD_TEXT.split())
SPAM_WORDS = tuple(_SPAM_TEXT.split())
ANCHORS = (*WORDS[20:], "Read more", "Continue reading", "Related story", "Click here", "Source")
LANGS = ("en", "en", "en", "en", "en-US", "en-US", "en-GB", "fr", "de", "es", "nl", "pt-BR", "it", "")
OTHER_SITES = (
    "news.example.org", "techblog.example", "dailyplanet.example", "recipes.example", "shop.example.com",
    "www.citynews.example", "blog.example.net", "sportsdesk.example", "wiki.example.org",
    "docs.example.com", "forum.example", "photos.example", "travelnotes.example", "m.localpaper.example",
    "research.example.edu", "video.example", "jobs.example", "weather.example",
)
SPAM_SITES = ("spam-deals.example", "cheap-pills.example", "phish-login.example", "malware-downloads.example")
PHISHED_BRANDS = ("PayPal", "Microsoft 365", "Apple ID", "Netflix", "Amazon", "DHL Express", "Chase Bank")
CURRENCY_NOTES = "Café crème, naïve façade, Müller & Søn — prices in £ and €, señor"


def error_response(status: int) -> web.Response:
    """A web site's 5xx, as an nginx front end sends it."""
    return answers.html_error(status)


def rate_limited_response(retry_after: float) -> web.Response:
    """A web site's 429."""
    return answers.html_rate_limited(retry_after)


@dataclass(frozen=True, slots=True)
class WebResponse:
    """One synthetic answer; ``headers`` include Content-Type (and Location for redirects)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class SyntheticWeb:
    """Answers any host name. Every answer is a pure function of (world seed, scheme, host, path?query)."""

    def __init__(self, world: World) -> None:
        self.world = world
        pool_rng = world.rng("web", "pool")
        self._paragraphs = tuple(_paragraph(pool_rng, WORDS) for _ in range(256))
        self._spam_paragraphs = tuple(_paragraph(pool_rng, SPAM_WORDS + WORDS[:40]) for _ in range(32))
        self._filler = _filler(pool_rng)
        # Link targets are drawn from fixed pools: building them per link was most of a page's cost.
        self._paths = tuple(_article_path(pool_rng) for _ in range(4096))
        self._external = tuple(f"https://{pool_rng.choice(OTHER_SITES)}{path}" for path in self._paths)
        self._spam_external = tuple(f"https://{pool_rng.choice(SPAM_SITES + OTHER_SITES[:4])}{path}"
                                    for path in self._paths[:1024])

    async def handle(self, request: web.Request) -> web.Response:
        answer = self.respond(request.scheme, request.host, request.raw_path)
        return web.Response(status=answer.status, headers=dict(answer.headers), body=answer.body)

    def respond(self, scheme: str, host: str, target: str) -> WebResponse:
        host = _bare_host(host)
        target = target or "/"
        if scheme != "https":
            return _redirect(301, f"https://{host}{target}")
        path, _, query = target.partition("?")
        if path == "/robots.txt":
            return WebResponse(200, (("Content-Type", "text/plain"),), b"User-agent: *\nAllow: /\n")
        if path.startswith("/missing/"):
            return _not_found()
        special = self._special(host, path)
        if special is not None:
            return special
        if path.endswith(".pdf"):
            return WebResponse(200, (("Content-Type", "application/pdf"),),
                               b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
        clean = _clean_target(path, query)
        rng = self.world.rng("page", host, clean)
        if path != "/" and rng.random() < 0.02:
            return _not_found()
        return self._page(rng, host, target, clean)

    def _special(self, host: str, path: str) -> WebResponse | None:
        if host in SHORT_HOSTS or host.startswith("short."):
            return None if path == "/" else self._short_link(host, path)
        if host == HOPS_HOST and path.startswith("/n/"):
            return _hops(path)
        if host == LOOP_HOST:
            return _redirect(302, "/loop/a" if path == "/loop/b" else "/loop/b")
        if host == HUGE_HOST:
            return WebResponse(200, (("Content-Type", "text/html; charset=utf-8"),), self._huge)
        if host == GZIP_BOMB_HOST:
            return WebResponse(200, (("Content-Type", "text/html; charset=utf-8"),
                                     ("Content-Encoding", "gzip")), _gzip_bomb())
        if host == XSS_HOST:
            return self._xss_page(host, path)
        if host in (LATIN1_HOST, CP1252_HOST, BAD_UTF8_HOST, NO_HEAD_HOST):
            return self._odd_encoding(host, path)
        return None

    def _short_link(self, host: str, path: str) -> WebResponse:
        rng = self.world.rng("short", host, path)
        status = 301 if rng.random() < 0.6 else 302
        roll = rng.random()
        if host != "s.example.net" and roll < 0.1:
            # Short links that point at another shortener: two hops before the page.
            return _redirect(status, f"https://s.example.net/r/{_code(rng)}")
        site = rng.choice(OTHER_SITES)
        scheme = "http" if roll > 0.85 else "https"  # an extra http -> https hop, as on the real web
        return _redirect(status, f"{scheme}://{site}{_article_path(rng)}")

    def _page(self, rng: random.Random, host: str, target: str, clean: str) -> WebResponse:
        facts = self.world.domain(host)
        spammy = facts.spam
        site = _site_name(host)
        vocabulary = SPAM_WORDS if spammy else WORDS
        headline = _headline(rng, vocabulary)
        if spammy:
            headline = headline.upper() + "!!!"
        title = rng.choice((f"{headline} | {site}", f"{headline} - {site}", headline))
        description = _sentence(rng, vocabulary, rng.randint(12, 30)) if rng.random() < 0.85 else None
        lang = rng.choice(LANGS)
        canonical = _canonical(rng, host, target, clean)
        has_og = rng.random() < (0.2 if spammy else 0.6)

        if spammy:
            words_target = rng.randint(40, 300)
            internal = rng.randint(0, 6)
            external = rng.randint(20, 120)
            nofollow_share = rng.random()
        else:
            words_target = min(20000, int(rng.lognormvariate(6.3, 0.9)))
            internal = min(300, int(rng.lognormvariate(3.0, 0.8)))
            external = min(80, int(rng.expovariate(1 / 6)))
            nofollow_share = rng.random() * 0.5
        size_target = (rng.randint(300_000, 500_000) if rng.random() < 0.03
                       else min(500_000, int(rng.lognormvariate(10.7, 0.9))))

        head = [
            '<meta charset="utf-8">',
            f"<title>{escape(title, quote=False)}</title>",
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
        ]
        if description is not None:
            head.append(f'<meta name="description" content="{escape(description)}">')
        if canonical is not None:
            head.append(f'<link rel="canonical" href="{escape(canonical)}">')
        if has_og:
            image = rng.randint(1, 9999)
            head.append(
                f'<meta property="og:title" content="{escape(headline)}">'
                f'<meta property="og:type" content="article">'
                f'<meta property="og:url" content="{escape(canonical or f"https://{host}{clean}")}">'
                f'<meta property="og:image" content="https://{escape(host)}/img/{image}.jpg">'
                f'<meta property="og:site_name" content="{escape(site)}">'
            )
        head.append('<link rel="stylesheet" href="/static/site.css">')

        paragraphs = self._spam_paragraphs if spammy else self._paragraphs
        chosen = rng.choices(paragraphs, k=max(1, words_target // 70))
        links = (_internal_links(rng, self._paths, host, internal)
                 + _external_links(rng, self._spam_external if spammy else self._external, external,
                                   nofollow_share))
        rng.shuffle(links)
        body = [f"<header><a href=\"/\">{escape(site)}</a></header><main><article><h1>"
                f"{escape(headline, quote=False)}</h1>"]
        if facts.threat == "phishing":
            # Its own draws: the rest of the page (and every other page) stays byte for byte as it was.
            body.append(_login_form(self.world.rng("web", "phish", host)))
        per_paragraph = len(links) // len(chosen) + 1
        for index, paragraph in enumerate(chosen):
            own_links = " ".join(links[index * per_paragraph:(index + 1) * per_paragraph])
            body.append(f"<p>{paragraph} {own_links}</p>")
        body.append(f"</article></main><footer><p>&copy; {escape(site)}</p></footer>")

        lang_attr = f' lang="{lang}"' if lang else ""
        parts = [f"<!DOCTYPE html>\n<html{lang_attr}>\n<head>\n", "\n".join(head)]
        page_so_far = sum(len(part) for part in parts) + sum(len(part) for part in body)
        missing = size_target - page_so_far - 40
        if missing > 0:
            start = rng.randrange(0, len(self._filler) - missing) if missing < len(self._filler) else 0
            parts.append(f"\n<script>window.__STATE__={self._filler[start:start + missing]}</script>")
        parts.append("\n</head>\n<body>\n")
        parts.extend(body)
        parts.append("\n</body>\n</html>\n")
        return WebResponse(200, (("Content-Type", "text/html; charset=utf-8"),), "".join(parts).encode())

    def _xss_page(self, host: str, path: str) -> WebResponse:
        payload = "<script>alert(1)</script>"
        # The markup is escaped so that a parser reads the payloads back as the literal text of the
        # title, description and attributes; escaping them again is the job of whatever shows them.
        title = escape(f"Totally normal article {payload}", quote=False)
        description = escape(f"\"><script>alert(document.domain)</script><img src=x onerror=alert(1)> {path}")
        lang = escape('en"><script>alert(2)</script>')
        body = (
            f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{title}</title>\n"
            f'<meta name="description" content="{description}">\n'
            f'<meta property="og:title" content="{escape(payload)}">\n'
            f'<link rel="canonical" href="javascript:alert(3)">\n'
            "</head>\n<body>\n"
            f"<h1>{escape(payload, quote=False)}</h1>\n"
            '<p>Read <a href="javascript:alert(4)">this</a>, '
            f'<a href="https://{escape(host)}/a/2" onclick="alert(5)">that</a> and '
            '<a href="https://news.example.org/a/1">the news</a>.</p>\n'
            "</body>\n</html>\n"
        )
        return WebResponse(200, (("Content-Type", "text/html; charset=utf-8"),), body.encode())

    def _odd_encoding(self, host: str, path: str) -> WebResponse:
        rng = self.world.rng("odd", host, path)
        text = f"{' '.join(rng.choices(self._paragraphs, k=3))} {CURRENCY_NOTES}."
        title = f"Crème brûlée à la {_site_name(host)} — “{rng.choice(WORDS)}”"
        links = '<a href="/a/1">home</a> <a href="https://news.example.org/a/1">news</a>'
        if host == NO_HEAD_HOST:
            html = (f"<!DOCTYPE html>\n<html>\n<body>\n<h1>{title}</h1>\n<p>{text}</p>\n<p>{links}</p>\n"
                    "</body>\n</html>\n")
            return WebResponse(200, (("Content-Type", "text/html; charset=utf-8"),), html.encode())
        meta = '<meta charset="windows-1252">\n' if host == CP1252_HOST else ""
        html = (f'<!DOCTYPE html>\n<html lang="fr">\n<head>\n{meta}<title>{title}</title>\n'
                f'<meta name="description" content="{CURRENCY_NOTES}">\n</head>\n<body>\n<h1>{title}</h1>\n'
                f"<p>{text}</p>\n<p>{links}</p>\n</body>\n</html>\n")
        if host == CP1252_HOST:
            return WebResponse(200, (("Content-Type", "text/html"),), html.encode("cp1252"))
        for char, ascii_form in (("—", "-"), ("“", '"'), ("”", '"'), ("€", "EUR")):
            html = html.replace(char, ascii_form)
        latin1 = html.encode("latin-1")
        charset = "utf-8" if host == BAD_UTF8_HOST else "ISO-8859-1"
        return WebResponse(200, (("Content-Type", f"text/html; charset={charset}"),), latin1)

    @functools.cached_property
    def _huge(self) -> bytes:
        head = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                "<title>A very large page</title>\n</head>\n<body>\n")
        paragraph_block = "".join(f"<p>{p}</p>\n" for p in self._paragraphs)
        repeats = HUGE_BYTES // len(paragraph_block) + 1
        return (head + paragraph_block * repeats)[:HUGE_BYTES - 16].encode() + b"</body></html>\n"


def _bare_host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rsplit(":", 1)[0].rstrip(".") if ":" in host else host.rstrip(".")


def _clean_target(path: str, query: str) -> str:
    """The page's own URL: tracking parameters removed, a trailing index file dropped."""
    for index_file in INDEX_FILES:
        if path.endswith("/" + index_file):
            path = path[: -len(index_file)]
            break
    if query:
        kept = [part for part in query.split("&")
                if part and not (part.startswith("utm_") or part.partition("=")[0] in TRACKING_PARAMS)]
        query = "&".join(kept)
    return f"{path}?{query}" if query else path


def _canonical(rng: random.Random, host: str, target: str, clean: str) -> str | None:
    """Non-clean URLs always point at the clean one; clean pages: mostly absolute, a few relative or none."""
    main_host = host
    for prefix in ("amp.", "m."):
        if host.startswith(prefix) and host.count(".") >= 2:
            main_host = host[len(prefix):]  # mobile / AMP copies point at the main site
    if target != clean or main_host != host:
        return f"https://{main_host}{clean}"
    roll = rng.random()
    if roll < 0.7:
        return f"https://{host}{clean}"
    if roll < 0.8:
        return clean
    return None


def _redirect(status: int, location: str) -> WebResponse:
    body = f'<html><body>Moved to <a href="{escape(location)}">{escape(location)}</a></body></html>'
    return WebResponse(status, (("Location", location), ("Content-Type", "text/html; charset=utf-8")),
                       body.encode())


def _not_found() -> WebResponse:
    body = (b"<!DOCTYPE html>\n<html lang=\"en\"><head><title>Page not found</title></head>"
            b"<body><h1>404 Not Found</h1><p>The page you asked for does not exist.</p></body></html>\n")
    return WebResponse(404, (("Content-Type", "text/html; charset=utf-8"),), body)


def _hops(path: str) -> WebResponse:
    rest = path[len("/n/"):].strip("/")
    if not rest.isdigit() or int(rest) > MAX_HOPS:
        return _not_found()
    hops = int(rest)
    if hops == 0:
        body = (b"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                b"<title>End of the chain</title><link rel=\"canonical\" href=\"https://hops.example/n/0\">"
                b"</head><body><p>You made it through every hop.</p></body></html>\n")
        return WebResponse(200, (("Content-Type", "text/html; charset=utf-8"),), body)
    status = (301, 302, 307, 308)[hops % 4]
    # Odd hops use a relative Location, even hops an absolute one: clients must resolve both.
    location = f"/n/{hops - 1}" if hops % 2 else f"https://{HOPS_HOST}/n/{hops - 1}"
    return _redirect(status, location)


@functools.cache
def _gzip_bomb() -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip container
    chunk = b" " * (1024 * 1024)
    data = b"".join(compressor.compress(chunk) for _ in range(GZIP_BOMB_BYTES // len(chunk)))
    return data + compressor.flush()


def _login_form(rng: random.Random) -> str:
    """What a phishing page asks for: a brand's sign-in form with a password field, posted to the same site."""
    brand = rng.choice(PHISHED_BRANDS)
    return (f'<form method="post" action="/{rng.choice(("verify", "secure", "account"))}/login.php">'
            f"<h2>{brand} account verification</h2><p>Your {brand} account has been limited. Sign in to verify "
            'your identity and restore access.</p><label>Email or phone <input type="email" name="email">'
            '</label><label>Password <input type="password" name="password"></label>'
            '<button type="submit">Sign in</button></form>')


def _site_name(host: str) -> str:
    labels = [label for label in host.split(".") if label not in ("www", "m", "amp")]
    return (labels[0] if labels else host).replace("-", " ").title()


def _paragraph(rng: random.Random, vocabulary: Sequence[str]) -> str:
    sentences = [_sentence(rng, vocabulary, rng.randint(6, 22)) for _ in range(rng.randint(2, 6))]
    return " ".join(sentences)


def _sentence(rng: random.Random, vocabulary: Sequence[str], count: int) -> str:
    words = rng.choices(vocabulary, k=count)
    return " ".join(words).capitalize() + "."


def _headline(rng: random.Random, vocabulary: Sequence[str]) -> str:
    return " ".join(rng.choices(vocabulary, k=rng.randint(4, 10))).capitalize()


def _slug(rng: random.Random) -> str:
    return "-".join(rng.choices(WORDS[20:], k=rng.randint(2, 6)))


def _code(rng: random.Random) -> str:
    return "".join(rng.choices(CODE_ALPHABET, k=rng.randint(5, 8)))


def _article_path(rng: random.Random) -> str:
    kind = rng.randrange(7)
    if kind == 0:
        return f"/a/{rng.randint(1, 5000)}"
    if kind == 1:
        return f"/{rng.randint(2008, 2025)}/{rng.randint(1, 12):02d}/{_slug(rng)}"
    if kind == 2:
        return f"/blog/{_slug(rng)}"
    if kind == 3:
        return f"/news/{_slug(rng)}?id={rng.randint(100, 99999)}"
    if kind == 4:
        return f"/p/{rng.randint(1, 90000)}.html"
    if kind == 5:
        return f"/category/{rng.choice(WORDS[20:])}/{_slug(rng)}/"
    return f"/tag/{rng.choice(WORDS[20:])}"


def _internal_links(rng: random.Random, paths: Sequence[str], host: str, count: int) -> list[str]:
    host = escape(host)
    links = []
    for path, anchor in zip(rng.choices(paths, k=count), rng.choices(ANCHORS, k=count), strict=True):
        form = rng.random()
        if form < 0.6:
            href = path
        elif form < 0.85:
            href = f"https://{host}{path}"
        elif form < 0.92:
            href = f"//{host}{path}"
        else:
            href = path.rsplit("/", 1)[-1] or "./"  # relative to the current directory
        links.append(f'<a href="{href}">{anchor}</a>')
    if count and rng.random() < 0.5:
        links.append('<a href="#top">Back to top</a> <a href="mailto:editor@example.org">Contact</a>')
    return links


def _external_links(rng: random.Random, urls: Sequence[str], count: int, nofollow_share: float) -> list[str]:
    links = []
    for url, anchor in zip(rng.choices(urls, k=count), rng.choices(ANCHORS, k=count), strict=True):
        rel = ""
        roll = rng.random()
        if roll < nofollow_share:
            rel = NOFOLLOW_RELS[int(roll * 1000) % len(NOFOLLOW_RELS)]
        elif roll > 0.8:
            rel = ' rel="noopener"'
        links.append(f'<a href="{url}"{rel}>{anchor}</a>')
    return links


def _filler(rng: random.Random) -> str:
    """Inline-script state: the bulk of many real pages' bytes, with no visible words."""
    records = [
        f'{{"id":{rng.randint(1, 10**9)},"k":"{rng.choice(WORDS)}","v":{rng.random():.6f},'
        f'"f":{rng.randint(0, 1)}}}'
        for _ in range(1024)
    ]
    block = "[" + ",".join(records) + "]"
    return (block * (600_000 // len(block) + 1))[:600_000]
