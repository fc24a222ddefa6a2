/*
 * audex-converter: entry points shared between main.c and job.c.
 */

#ifndef _AUDEX_MAIN_H_INCLUDED_
#define _AUDEX_MAIN_H_INCLUDED_


/* the job loop: "audex-converter [run] [options]"; returns an exit code */
int audex_job_main(int argc, char **argv);


#endif /* _AUDEX_MAIN_H_INCLUDED_ */
