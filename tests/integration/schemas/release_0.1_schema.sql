-- The tables of wordcrawl's first release (0.1), before its schema had migrations: what
-- `wordcrawl init-db` made at commit 5c2d48c, dumped with `pg_dump --schema-only --no-owner
-- --no-privileges` (Celery's result tables included, as such a database has them).
-- test_schema.py migrates a database made from it to the newest revision.

--
-- PostgreSQL database dump
--


-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: celery_taskmeta; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.celery_taskmeta (
    id integer NOT NULL,
    task_id character varying(155),
    status character varying(50),
    result bytea,
    date_done timestamp without time zone,
    traceback text,
    children bytea,
    name character varying(155),
    args bytea,
    kwargs bytea,
    worker character varying(155),
    retries integer,
    queue character varying(155),
    stamps bytea
);


--
-- Name: celery_tasksetmeta; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.celery_tasksetmeta (
    id integer NOT NULL,
    taskset_id character varying(155),
    result bytea,
    date_done timestamp without time zone
);


--
-- Name: job_urls; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.job_urls (
    job_id uuid NOT NULL,
    "position" integer NOT NULL,
    url text NOT NULL
);


--
-- Name: jobs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.jobs (
    id uuid NOT NULL,
    status text NOT NULL,
    depth integer NOT NULL,
    max_pages integer NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    schedule_id uuid,
    CONSTRAINT jobs_status_known CHECK ((status = ANY (ARRAY['queued'::text, 'running'::text, 'done'::text, 'failed'::text, 'cancelled'::text])))
);


--
-- Name: page_attempts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.page_attempts (
    page_id bigint NOT NULL,
    attempt integer NOT NULL,
    outcome text NOT NULL,
    error text,
    message text,
    http_status integer,
    worker text,
    task_id text,
    started_at timestamp with time zone,
    finished_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT page_attempts_outcome_known CHECK ((outcome = ANY (ARRAY['retried'::text, 'failed'::text])))
);


--
-- Name: pages; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.pages (
    id bigint NOT NULL,
    job_id uuid NOT NULL,
    url text NOT NULL,
    depth integer NOT NULL,
    status text NOT NULL,
    http_status integer,
    title text,
    word_count integer,
    unique_words integer,
    error text,
    message text,
    worker text,
    task_id text,
    queued_at timestamp with time zone DEFAULT now() NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    elapsed_ms integer,
    attempts integer DEFAULT 0 NOT NULL,
    CONSTRAINT pages_error_known CHECK (((error IS NULL) OR (error = ANY (ARRAY['invalid_url'::text, 'blocked_address'::text, 'robots_disallowed'::text, 'http_error'::text, 'timeout'::text, 'too_large'::text, 'unsupported_content_type'::text, 'too_many_redirects'::text, 'connection_error'::text, 'decode_error'::text])))),
    CONSTRAINT pages_status_known CHECK ((status = ANY (ARRAY['queued'::text, 'running'::text, 'done'::text, 'failed'::text, 'skipped'::text])))
);


--
-- Name: pages_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.pages_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: pages_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.pages_id_seq OWNED BY public.pages.id;


--
-- Name: schedules; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schedules (
    id uuid NOT NULL,
    urls text[] NOT NULL,
    depth integer NOT NULL,
    max_pages integer NOT NULL,
    every_minutes integer,
    cron text,
    paused boolean DEFAULT false NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    next_run_at timestamp with time zone NOT NULL,
    last_run_at timestamp with time zone,
    CONSTRAINT schedules_minutes CHECK (((every_minutes IS NULL) OR (every_minutes >= 1))),
    CONSTRAINT schedules_one_timing CHECK (((every_minutes IS NULL) <> (cron IS NULL)))
);


--
-- Name: task_id_sequence; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.task_id_sequence
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: taskset_id_sequence; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.taskset_id_sequence
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: word_counts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.word_counts (
    page_id bigint NOT NULL,
    word text NOT NULL,
    count integer NOT NULL
);


--
-- Name: pages id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.pages ALTER COLUMN id SET DEFAULT nextval('public.pages_id_seq'::regclass);


--
-- Name: celery_taskmeta celery_taskmeta_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.celery_taskmeta
    ADD CONSTRAINT celery_taskmeta_pkey PRIMARY KEY (id);


--
-- Name: celery_taskmeta celery_taskmeta_task_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.celery_taskmeta
    ADD CONSTRAINT celery_taskmeta_task_id_key UNIQUE (task_id);


--
-- Name: celery_tasksetmeta celery_tasksetmeta_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.celery_tasksetmeta
    ADD CONSTRAINT celery_tasksetmeta_pkey PRIMARY KEY (id);


--
-- Name: celery_tasksetmeta celery_tasksetmeta_taskset_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.celery_tasksetmeta
    ADD CONSTRAINT celery_tasksetmeta_taskset_id_key UNIQUE (taskset_id);


--
-- Name: job_urls job_urls_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.job_urls
    ADD CONSTRAINT job_urls_pkey PRIMARY KEY (job_id, "position");


--
-- Name: jobs jobs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.jobs
    ADD CONSTRAINT jobs_pkey PRIMARY KEY (id);


--
-- Name: page_attempts page_attempts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.page_attempts
    ADD CONSTRAINT page_attempts_pkey PRIMARY KEY (page_id, attempt);


--
-- Name: pages pages_job_id_url_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.pages
    ADD CONSTRAINT pages_job_id_url_key UNIQUE (job_id, url);


--
-- Name: pages pages_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.pages
    ADD CONSTRAINT pages_pkey PRIMARY KEY (id);


--
-- Name: schedules schedules_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schedules
    ADD CONSTRAINT schedules_pkey PRIMARY KEY (id);


--
-- Name: word_counts word_counts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.word_counts
    ADD CONSTRAINT word_counts_pkey PRIMARY KEY (page_id, word);


--
-- Name: ix_celery_taskmeta_date_done; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_celery_taskmeta_date_done ON public.celery_taskmeta USING btree (date_done);


--
-- Name: ix_celery_tasksetmeta_date_done; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_celery_tasksetmeta_date_done ON public.celery_tasksetmeta USING btree (date_done);


--
-- Name: ix_jobs_schedule_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_jobs_schedule_id ON public.jobs USING btree (schedule_id);


--
-- Name: jobs_created_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX jobs_created_at ON public.jobs USING btree (created_at);


--
-- Name: pages_failed_finished_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX pages_failed_finished_at ON public.pages USING btree (finished_at) WHERE (status = 'failed'::text);


--
-- Name: pages_finished_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX pages_finished_at ON public.pages USING btree (finished_at);


--
-- Name: pages_in_broker; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX pages_in_broker ON public.pages USING btree (job_id) WHERE ((status = ANY (ARRAY['queued'::text, 'running'::text])) AND (task_id IS NOT NULL));


--
-- Name: pages_job_id_status; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX pages_job_id_status ON public.pages USING btree (job_id, status);


--
-- Name: pages_waiting; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX pages_waiting ON public.pages USING btree (job_id, id) WHERE ((status = 'queued'::text) AND (task_id IS NULL));


--
-- Name: schedules_due; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX schedules_due ON public.schedules USING btree (next_run_at) WHERE (NOT paused);


--
-- Name: word_counts_word; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX word_counts_word ON public.word_counts USING btree (word);


--
-- Name: job_urls job_urls_job_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.job_urls
    ADD CONSTRAINT job_urls_job_id_fkey FOREIGN KEY (job_id) REFERENCES public.jobs(id);


--
-- Name: page_attempts page_attempts_page_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.page_attempts
    ADD CONSTRAINT page_attempts_page_id_fkey FOREIGN KEY (page_id) REFERENCES public.pages(id) ON DELETE CASCADE;


--
-- Name: pages pages_job_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.pages
    ADD CONSTRAINT pages_job_id_fkey FOREIGN KEY (job_id) REFERENCES public.jobs(id);


--
-- Name: word_counts word_counts_page_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.word_counts
    ADD CONSTRAINT word_counts_page_id_fkey FOREIGN KEY (page_id) REFERENCES public.pages(id) ON DELETE CASCADE;


--
-- PostgreSQL database dump complete
--


