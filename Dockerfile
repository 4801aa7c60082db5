# wordcrawl's one image: every service of docker-compose.yml runs it, each with its own
# command (the manager, the one-shot init, the demo site, the workers, the scheduler and
# Flower), so Docker builds it once and every piece runs the same code.
#
# Build it from the repository root:
#   docker build -t wordcrawl .
# docker-compose.yml does the same (`build: .`); its services set the command.

FROM python:3.11-slim

# Print logs at once (no buffering), write no .pyc files at run time (the code is
# read-only there), keep no pip cache in the image, and let pip run as root quietly.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# 1. The runtime dependencies, from pyproject.toml alone (not its extras: no test tools,
#    no embedded servers). Docker rebuilds a layer only when the files copied before it
#    change, so editing the code does not reinstall Celery, lxml & co. (pip cannot
#    install "only the dependencies" of a project, hence the few lines of Python that
#    list them from pyproject.toml.)
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print(*deps, sep='\n')" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# 2. NLTK's English stopwords, into a folder on NLTK's standard search path. The
#    downloader exits with 0 even when it downloaded nothing (no network, index down),
#    so the next command checks that the corpus really loads and fails the build if not.
#    --exit-on-error stops it from asking "Retry? [n/y/e]" on a terminal it does not have.
#    (wordcrawl also ships a copy of the list as a fallback; this makes the image use
#    NLTK's own data.) Before the code is copied, so code changes do not download again.
ENV NLTK_DATA=/usr/local/share/nltk_data
RUN python -m nltk.downloader --exit-on-error -d "$NLTK_DATA" stopwords \
    && python -c "from nltk.corpus import stopwords; assert len(stopwords.words('english')) > 100"

# 3. The project itself. README.md is needed because pyproject.toml names it as the
#    package's long description. --no-deps: step 1 installed them already. The source
#    stays in /app (root-owned, read-only for the services: Flower reads its
#    configuration file from /app/job_viewer/); the build leftovers go.
COPY README.md ./
COPY job_tasks ./job_tasks
COPY job_worker ./job_worker
COPY job_manager ./job_manager
COPY job_viewer ./job_viewer
COPY wordcrawl ./wordcrawl
RUN pip install --no-deps . \
    && rm -rf build wordcrawl.egg-info

# 4. Run as an ordinary user: a bug in a parser fed by arbitrary web pages should not
#    run as root. /data is the one folder that user may write: Flower keeps its task
#    history there, in the named volume docker-compose.yml mounts (a new volume takes
#    the owner of the folder it is mounted on).
RUN useradd --create-home --uid 10001 wordcrawl \
    && mkdir /data \
    && chown wordcrawl:wordcrawl /data
USER wordcrawl

# As that user, check that the worker's own code finds the downloaded stopwords (and not
# only its shipped fallback copy).
RUN python -c "from nltk.corpus import stopwords; from job_tasks.reading.words import english_stopwords; assert len(english_stopwords()) > 100; assert str(stopwords.root).startswith('/usr/local/share/nltk_data'), stopwords.root"

# The manager (5000), Flower (5555) and the demo site (8001), by the service that runs each.
EXPOSE 5000 5555 8001

# Without a command of its own, the image serves the manager: `wordcrawl serve` checks
# the settings (a readable error for a bad variable, or a missing SECRET_KEY in
# production), then execs gunicorn on 0.0.0.0 (inside a container, 127.0.0.1 would be
# unreachable from outside it).
CMD ["wordcrawl", "serve", "--host", "0.0.0.0", "--port", "5000"]
